using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// The log file of the daemon started by the editor (<c>Library/PixelKiln/daemon.log</c>):
    /// the launcher points the daemon's stdout and stderr at it (see
    /// <see cref="DaemonCommand.Launch"/>), so no pipe connects the daemon to the editor and
    /// nothing has to read one across a domain reload; the window reads the file's last lines
    /// to explain a failure. No Unity types: tests/clients compiles and runs it with mono.
    /// </summary>
    internal static class DaemonLog
    {
        public const string FileName = "daemon.log";

        /// <summary>
        /// Makes <paramref name="folder"/> and starts a fresh log there: the previous run's log is
        /// kept as <c>daemon.log.1</c> (one generation). Returns the log's full path. Throws
        /// <see cref="IOException"/> with the path when the old log cannot be moved (on Windows:
        /// a daemon from an earlier editor session still writes to it).
        /// </summary>
        public static string Prepare(string folder)
        {
            Directory.CreateDirectory(folder);
            string path = Path.GetFullPath(Path.Combine(folder, FileName));
            string previous = path + ".1";
            try
            {
                if (File.Exists(previous)) File.Delete(previous);
                if (File.Exists(path)) File.Move(path, previous);
                File.WriteAllBytes(path, new byte[0]);
            }
            catch (Exception e)
            {
                if (!(e is IOException) && !(e is UnauthorizedAccessException)) throw;
                throw new IOException("cannot start a new daemon log at '" + path + "' (" + e.Message
                    + "). Is a daemon from an earlier session still running? Stop it, or delete the file.", e);
            }
            return path;
        }

        /// <summary>
        /// The last <paramref name="lines"/> lines of the log (at most the last 64 KiB), read while
        /// the daemon may still be writing; empty when the file does not exist.
        /// </summary>
        public static string Tail(string path, int lines)
        {
            if (string.IsNullOrEmpty(path) || !File.Exists(path)) return "";
            byte[] bytes;
            try
            {
                using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read,
                    FileShare.ReadWrite | FileShare.Delete))
                {
                    long start = Math.Max(0, stream.Length - 64 * 1024);
                    stream.Seek(start, SeekOrigin.Begin);
                    bytes = new byte[stream.Length - start];
                    int read = 0;
                    while (read < bytes.Length)
                    {
                        int n = stream.Read(bytes, read, bytes.Length - read);
                        if (n == 0) break;
                        read += n;
                    }
                    if (read < bytes.Length) Array.Resize(ref bytes, read);
                }
            }
            catch (IOException e)
            {
                return "(cannot read '" + path + "': " + e.Message + ")";
            }
            string text = new UTF8Encoding(false, false).GetString(bytes).Replace("\r\n", "\n");
            var kept = new List<string>(text.Split('\n'));
            if (kept.Count > 0 && kept[kept.Count - 1].Length == 0) kept.RemoveAt(kept.Count - 1);
            if (kept.Count > lines) kept.RemoveRange(0, kept.Count - lines);
            return string.Join("\n", kept.ToArray());
        }

        /// <summary>What an error message shows: the log's tail and where the whole log is.</summary>
        public static string Describe(string path, int lines)
        {
            if (string.IsNullOrEmpty(path)) return "";
            string tail = Tail(path, lines);
            return (tail.Length > 0 ? "Last lines of the daemon's log:\n" + tail + "\n" : "The daemon's log is empty.\n")
                + "Full log: " + path;
        }
    }
}
