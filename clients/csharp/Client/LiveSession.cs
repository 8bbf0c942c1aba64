// Live img2img sessions over the WebSocket carrier. Hand-written (not generated).

using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>
    /// A live img2img session (<see cref="PixelKilnClient.OpenLive"/>): send sketches or renders
    /// at any rate, receive frames for the newest one. <see cref="Send(byte[], LiveSettings)"/>
    /// never blocks: inputs not yet on the wire are merged into the newest (its image, or the
    /// previous one when it has none; settings merged field by field), and the daemon itself
    /// works on the newest input only, one generation at a time, unchanged inputs free.
    /// Frames arrive through <see cref="FrameReceived"/> (on the callback context) and through
    /// <see cref="ReadFrameAsync"/>; <see cref="End"/> finishes the session.
    /// </summary>
    /// <example>
    /// <code>
    /// LiveSession live = await client.OpenLiveAsync(new LiveSettings { Prompt = "moss", Strength = 0.5f, Steps = 2 });
    /// live.Send(File.ReadAllBytes("sketch.png"));
    /// Task ending = live.End();
    /// LiveFrame frame;
    /// while ((frame = await live.ReadFrameAsync()) != null)
    ///     Console.WriteLine("frame for input " + frame.Seq + (frame.Unchanged ? " (unchanged)" : ""));
    /// await ending;
    /// </code>
    /// </example>
    public sealed class LiveSession : IDisposable
    {
        private readonly PixelKilnClient client;
        private readonly Connection connection;
        private readonly object gate = new object();
        private readonly Queue<LiveFrame> unread = new Queue<LiveFrame>();
        private readonly TaskCompletionSource<bool> completion =
            new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly int bufferLimit;
        private LiveSettings unsentSettings;
        private LiveInput pending;
        private TaskCompletionSource<LiveFrame> waiter;
        private bool pumping;
        private bool endRequested;
        private bool endSent;
        private bool finished;
        private Exception failure;
        private ulong seq;
        private long dropped;
        private LiveFrame latest;

        internal LiveSession(PixelKilnClient client, Connection connection, string requestId, LiveSettings settings)
        {
            this.client = client;
            this.connection = connection;
            RequestId = requestId;
            unsentSettings = settings;
            bufferLimit = Math.Max(1, client.Options.LiveFrameBuffer);
            Call = new LiveCall(this, connection, requestId);
        }

        /// <summary>The envelope request id of this session.</summary>
        public string RequestId { get; private set; }

        /// <summary>The sequence number of the newest input given to <see cref="Send(byte[], LiveSettings)"/>.</summary>
        public ulong LastSentSeq
        {
            get { lock (gate) return seq; }
        }

        /// <summary>The newest frame received (null before the first).</summary>
        public LiveFrame LatestFrame
        {
            get { lock (gate) return latest; }
        }

        /// <summary>Frames dropped because <see cref="ReadFrameAsync"/> fell behind (see <see cref="PixelKilnClientOptions.LiveFrameBuffer"/>).</summary>
        public long DroppedFrames
        {
            get { return Interlocked.Read(ref dropped); }
        }

        /// <summary>
        /// Completes when the daemon has sent its last frame after <see cref="End"/>; faults with
        /// <see cref="PixelKilnException"/> when the session fails (for example an idle timeout,
        /// <c>DEADLINE_EXCEEDED</c>) or <see cref="PixelKilnConnectionException"/> when the
        /// connection is lost.
        /// </summary>
        public Task Completion
        {
            get { return completion.Task; }
        }

        /// <summary>A frame arrived (on the client's callback context).</summary>
        public event Action<LiveFrame> FrameReceived;

        /// <summary>The session ended: null after a normal end, else the error (on the callback context).</summary>
        public event Action<Exception> Ended;

        internal LiveCall Call { get; private set; }

        /// <summary>
        /// Queues an input: an encoded image (PNG, JPEG or WEBP bytes; the encoding is detected)
        /// and optionally changed settings, which persist until changed again. Returns its sequence
        /// number; the frame answering it carries the same <c>Seq</c>. Never blocks.
        /// </summary>
        public ulong Send(byte[] encodedImage, LiveSettings settings = null)
        {
            return Send(encodedImage == null ? null : Images.FromEncoded(encodedImage), settings);
        }

        /// <summary>
        /// Queues an input given as an <see cref="Image"/> (for example raw RGBA8 from
        /// <see cref="Images.FromRgba32"/>); null keeps the previous image (to change only settings).
        /// </summary>
        public ulong Send(Image image, LiveSettings settings = null)
        {
            bool start;
            ulong number;
            lock (gate)
            {
                if (finished) throw failure ?? new InvalidOperationException("the live session has ended");
                if (endRequested) throw new InvalidOperationException("End() was called on this live session");
                number = ++seq;
                var input = new LiveInput { Seq = number, Image = image };
                LiveSettings merged = LiveOptions.Merge(unsentSettings, settings);
                unsentSettings = null;
                if (pending != null)
                {
                    // Not on the wire yet: the newest input replaces it, keeping what it would lose.
                    if (input.Image == null) input.Image = pending.Image;
                    merged = LiveOptions.Merge(pending.Settings, merged);
                }
                input.Settings = merged;
                pending = input;
                start = !pumping;
                pumping = true;
            }
            if (start) StartPump();
            return number;
        }

        /// <summary>Changes settings only (the previous image is kept); returns the input's sequence number.</summary>
        public ulong UpdateSettings(LiveSettings settings)
        {
            return Send((Image)null, settings);
        }

        /// <summary>
        /// The next frame, or null once the session has ended normally. Frames not read are kept
        /// up to <see cref="PixelKilnClientOptions.LiveFrameBuffer"/> (the oldest are dropped).
        /// One reader at a time.
        /// </summary>
        /// <exception cref="PixelKilnException">The session failed.</exception>
        public Task<LiveFrame> ReadFrameAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            TaskCompletionSource<LiveFrame> wait;
            lock (gate)
            {
                if (unread.Count > 0) return Task.FromResult(unread.Dequeue());
                if (finished)
                {
                    if (failure != null)
                    {
                        var failed = new TaskCompletionSource<LiveFrame>();
                        failed.SetException(failure);
                        return failed.Task;
                    }
                    return Task.FromResult<LiveFrame>(null);
                }
                if (waiter != null) throw new InvalidOperationException("ReadFrameAsync is already waiting");
                wait = new TaskCompletionSource<LiveFrame>(TaskCreationOptions.RunContinuationsAsynchronously);
                waiter = wait;
            }
            if (cancellationToken.CanBeCanceled)
            {
                CancellationTokenRegistration registration = cancellationToken.Register(() =>
                {
                    lock (gate)
                    {
                        if (waiter == wait) waiter = null;
                    }
                    wait.TrySetCanceled(cancellationToken);
                });
                wait.Task.ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
            }
            return wait.Task;
        }

        /// <summary>
        /// Ends the session after the inputs already queued: the daemon answers them, then closes
        /// the session. Returns <see cref="Completion"/>. Safe to call more than once.
        /// </summary>
        public Task End()
        {
            bool start;
            lock (gate)
            {
                if (finished || endRequested) return completion.Task;
                endRequested = true;
                start = !pumping;
                pumping = true;
            }
            if (start) StartPump();
            return completion.Task;
        }

        /// <summary>Ends the session without waiting (see <see cref="End"/>).</summary>
        public void Dispose()
        {
            QuietTasks.Observe(End());
        }

        private void StartPump()
        {
            Task.Run(() => PumpAsync());
        }

        /// <summary>Sends queued inputs one at a time, then the end marker when asked.</summary>
        private async Task PumpAsync()
        {
            while (true)
            {
                Envelope envelope;
                lock (gate)
                {
                    if (finished)
                    {
                        pumping = false;
                        return;
                    }
                    if (pending != null)
                    {
                        envelope = new Envelope { RequestId = RequestId, LiveInput = pending };
                        pending = null;
                    }
                    else if (endRequested && !endSent)
                    {
                        envelope = new Envelope { RequestId = RequestId, LiveEnd = new LiveEnd() };
                        endSent = true;
                    }
                    else
                    {
                        pumping = false;
                        return;
                    }
                }
                try
                {
                    await client.SendAsync(connection, envelope, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    Finish(e);
                }
            }
        }

        internal void OnEnvelope(Envelope envelope)
        {
            switch (envelope.BodyCase)
            {
                case Envelope.BodyOneofCase.LiveFrame:
                    OnFrame(envelope.LiveFrame);
                    break;
                case Envelope.BodyOneofCase.LiveEnd:
                    Finish(null);
                    break;
                case Envelope.BodyOneofCase.Error:
                    Finish(PixelKilnException.FromError(envelope.Error));
                    break;
            }
        }

        private void OnFrame(LiveFrame frame)
        {
            TaskCompletionSource<LiveFrame> wake = null;
            lock (gate)
            {
                latest = frame;
                if (waiter != null)
                {
                    wake = waiter;
                    waiter = null;
                }
                else
                {
                    unread.Enqueue(frame);
                    while (unread.Count > bufferLimit)
                    {
                        unread.Dequeue();
                        Interlocked.Increment(ref dropped);
                    }
                }
            }
            if (wake != null) wake.TrySetResult(frame);
            Action<LiveFrame> handler = FrameReceived;
            if (handler != null) client.Dispatch(() => handler(frame));
        }

        internal void Finish(Exception error)
        {
            TaskCompletionSource<LiveFrame> wake;
            bool sayEnd;
            lock (gate)
            {
                if (finished) return;
                finished = true;
                failure = error;
                wake = waiter;
                waiter = null;
                pending = null;
                // A failed session may still exist on the daemon: ask it to close.
                sayEnd = error != null && !(error is PixelKilnConnectionException) && !endSent;
                endSent = true;
            }
            Call.Done();
            if (sayEnd)
            {
                var end = new Envelope { RequestId = RequestId, LiveEnd = new LiveEnd() };
                QuietTasks.Observe(client.SendAsync(connection, end, CancellationToken.None));
            }
            if (wake != null)
            {
                if (error == null) wake.TrySetResult(null);
                else wake.TrySetException(error);
            }
            Action<Exception> ended = Ended;
            // Completion is set after the callbacks already posted, so awaiting code sees every frame first.
            client.Dispatch(() =>
            {
                if (ended != null) ended(error);
                if (error == null) completion.TrySetResult(true);
                else completion.TrySetException(error);
            });
        }
    }
}
