// Typed callbacks for the events of one generation. Hand-written (not generated).

using System;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>
    /// Callbacks for the events of one <see cref="PixelKilnClient.GenerateAsync"/> call, one per
    /// event kind; unset ones are skipped. It is an <see cref="IProgress{T}"/> of
    /// <see cref="GenerateEvent"/>, so any other <c>IProgress&lt;GenerateEvent&gt;</c> (for example
    /// <c>System.Progress&lt;GenerateEvent&gt;</c>) works in its place.
    /// </summary>
    /// <example>
    /// <code>
    /// var events = new GenerateHandlers
    /// {
    ///     Accepted = a => Console.WriteLine("seed " + a.Seed),
    ///     Progress = p => Console.WriteLine(p.Step + "/" + p.Total),
    ///     Preview = p => ShowJpeg(p.Images[0].Data),
    /// };
    /// Result result = await client.GenerateAsync(request, events, token);
    /// </code>
    /// </example>
    public sealed class GenerateHandlers : IProgress<GenerateEvent>
    {
        /// <summary>The request passed validation; carries the resolved seed, size and steps.</summary>
        public Action<Accepted> Accepted { get; set; }

        /// <summary>Waiting in the queue (position 0 runs next).</summary>
        public Action<Queued> Queued { get; set; }

        /// <summary>A denoising step finished.</summary>
        public Action<Progress> Progress { get; set; }

        /// <summary>A step preview (small, lossy), one image per requested image.</summary>
        public Action<Preview> Preview { get; set; }

        /// <summary>The final result (also the value of the returned task).</summary>
        public Action<Result> Result { get; set; }

        /// <summary>Dispatches one event to the matching callback.</summary>
        public void Report(GenerateEvent value)
        {
            if (value == null) return;
            switch (value.EventCase)
            {
                case GenerateEvent.EventOneofCase.Accepted:
                    if (Accepted != null) Accepted(value.Accepted);
                    break;
                case GenerateEvent.EventOneofCase.Queued:
                    if (Queued != null) Queued(value.Queued);
                    break;
                case GenerateEvent.EventOneofCase.Progress:
                    if (Progress != null) Progress(value.Progress);
                    break;
                case GenerateEvent.EventOneofCase.Preview:
                    if (Preview != null) Preview(value.Preview);
                    break;
                case GenerateEvent.EventOneofCase.Result:
                    if (Result != null) Result(value.Result);
                    break;
            }
        }
    }
}
