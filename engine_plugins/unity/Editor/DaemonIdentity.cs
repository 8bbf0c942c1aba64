using System;
using System.Diagnostics;
using System.Globalization;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Who the daemon started by the editor is: its process id and the time that process
    /// started (<c>pid@ticks</c>, UTC ticks). An id alone is not enough: once the daemon has
    /// exited, the OS may give its id to any other process, and "Stop daemon" must never signal
    /// that one. No Unity types: tests/clients compiles and runs it with mono.
    /// </summary>
    internal static class DaemonIdentity
    {
        /// <summary>
        /// Start times read twice may differ slightly where the runtime derives them from the
        /// boot time (.NET on Linux); a reused id within this much of the original start is not
        /// a practical risk.
        /// </summary>
        public static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(1);

        /// <summary>The identity of a running process, or null when its start time cannot be read.</summary>
        public static string Of(Process process)
        {
            long ticks;
            if (!TryStartTicks(process, out ticks)) return null;
            return process.Id.ToString(CultureInfo.InvariantCulture) + "@" + ticks.ToString(CultureInfo.InvariantCulture);
        }

        /// <summary>
        /// The running process with this identity, or null: the identity is empty or malformed,
        /// no process has the id, or the one that has it started at another time (the id was
        /// reused) or its start time cannot be read (then it is not ours to signal either).
        /// </summary>
        public static Process Find(string identity)
        {
            int pid;
            long ticks;
            if (!TryParse(identity, out pid, out ticks)) return null;
            Process process;
            try
            {
                process = Process.GetProcessById(pid);
            }
            catch (ArgumentException)
            {
                return null;   // no such process
            }
            catch (InvalidOperationException)
            {
                return null;
            }
            long actual;
            bool same = TryStartTicks(process, out actual) && Math.Abs(actual - ticks) <= Tolerance.Ticks;
            bool running;
            try
            {
                running = !process.HasExited;
            }
            catch (Exception)
            {
                running = false;   // not ours: no access to it
            }
            if (same && running) return process;
            process.Dispose();
            return null;
        }

        /// <summary>Splits <c>pid@ticks</c>; false for anything else.</summary>
        public static bool TryParse(string identity, out int pid, out long ticks)
        {
            pid = 0;
            ticks = 0;
            if (string.IsNullOrEmpty(identity)) return false;
            string[] parts = identity.Split('@');
            return parts.Length == 2
                && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out pid)
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out ticks)
                && pid > 0 && ticks > 0;
        }

        private static bool TryStartTicks(Process process, out long ticks)
        {
            ticks = 0;
            try
            {
                ticks = process.StartTime.ToUniversalTime().Ticks;
                return true;
            }
            catch (Exception)
            {
                // Exited, no access (another user's process), or not supported here.
                return false;
            }
        }
    }
}
