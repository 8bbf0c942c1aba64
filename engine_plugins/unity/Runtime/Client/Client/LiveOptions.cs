// The live options (README "Live options"): settings merged field by field, and what a frame says
// about itself. Hand-written.

using System;
using System.Collections.Generic;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>
    /// Helpers for <see cref="LiveSettings"/> and <see cref="LiveFrame"/>. The fast options are
    /// plain settings: <c>OutputEncoding = Encoding.RawRgba8</c> (frames of width*height*4 bytes,
    /// rows top to bottom: no PNG encode on the daemon, no decode in the engine),
    /// <c>StreamBatch</c>, <c>TinyAutoencoder</c>, <c>SimilarSkipThreshold</c> and
    /// <c>SimilarSkipMax</c>; each frame says which were applied (<see cref="Describe"/>).
    /// </summary>
    /// <example>
    /// <code>
    /// var settings = new LiveSettings { Prompt = "moss", OutputEncoding = Encoding.RawRgba8,
    ///     StreamBatch = true, SimilarSkipThreshold = 0.02f };
    /// LiveSession live = await client.OpenLiveAsync(settings);
    /// live.FrameReceived += frame => Console.WriteLine(LiveOptions.Describe(frame));
    /// </code>
    /// </example>
    public static class LiveOptions
    {
        /// <summary>
        /// Settings of <paramref name="older"/> overridden by every field set in <paramref name="newer"/>.
        /// Every LiveSettings field is optional (set or not), so a protobuf merge is exactly that,
        /// and a field added to the contract needs no code here.
        /// </summary>
        internal static LiveSettings Merge(LiveSettings older, LiveSettings newer)
        {
            if (older == null) return newer;
            if (newer == null) return older;
            LiveSettings merged = older.Clone();
            merged.MergeFrom(newer.ToByteArray());
            return merged;
        }

        /// <summary>Whether the frame carries an image (unchanged and similar frames do not: the previous one stands).</summary>
        public static bool HasImage(LiveFrame frame)
        {
            return frame != null && frame.Image != null && frame.Image.Data.Length > 0;
        }

        /// <summary>
        /// One line for a status bar: the input answered, whether it was unchanged or skipped as
        /// similar, inputs replaced since the previous frame, the total milliseconds, and which of
        /// stream batch, the tiny autoencoder, raw frames and recorded graphs (on the CPU: how many
        /// of the frame's model calls they served) the daemon applied, e.g.
        /// <c>input 7, 12 ms, applied: stream batch, tiny autoencoder, recorded graphs (4 calls)</c>.
        /// </summary>
        public static string Describe(LiveFrame frame)
        {
            if (frame == null) throw new ArgumentNullException("frame");
            var parts = new List<string> { "input " + frame.Seq };
            if (frame.Similar) parts.Add("similar (skipped)");
            else if (frame.Unchanged) parts.Add("unchanged");
            if (frame.Skipped > 0) parts.Add("replaced " + frame.Skipped);
            if (frame.Timings != null) parts.Add(Math.Round(frame.Timings.TotalMs) + " ms");
            var applied = new List<string>();
            if (frame.StreamBatch) applied.Add("stream batch");
            if (frame.TinyAutoencoder) applied.Add("tiny autoencoder");
            if (HasImage(frame) && frame.Image.Encoding == Encoding.RawRgba8) applied.Add("raw frames");
            if (frame.GraphCalls > 0) applied.Add("recorded graphs (" + frame.GraphCalls + " calls)");
            parts.Add("applied: " + (applied.Count > 0 ? string.Join(", ", applied.ToArray()) : "none"));
            return string.Join(", ", parts.ToArray());
        }
    }
}
