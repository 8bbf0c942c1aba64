using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// A graceful stop on Windows, where there is no SIGTERM and <c>Process.Kill</c> is
    /// <c>TerminateProcess</c> (no grace, in-flight work lost): a <c>CTRL_BREAK_EVENT</c>, which
    /// the daemon takes as SIGBREAK and answers like SIGTERM elsewhere.
    /// <para>
    /// <c>GenerateConsoleCtrlEvent</c> reaches only processes on the caller's console. The daemon
    /// was started with <c>CreateNoWindow</c>, so it has a console of its own (hidden) shared with
    /// no one: the editor attaches to it, sends the event to that console's processes (group 0:
    /// <c>cmd.exe</c>, which starts the daemon with its output in the log file (see
    /// <see cref="DaemonCommand.Launch(string, string[], string)"/>) and exits with it, the
    /// <c>pixelkiln.exe</c> launcher, which ignores it and waits, and Python), ignores the
    /// event itself with a handler, and detaches. That isolation is what
    /// <c>CREATE_NEW_PROCESS_GROUP</c> would give, which .NET's <c>ProcessStartInfo</c> cannot
    /// ask for. When the editor has a console of its own (batch mode) it cannot attach to
    /// another one: the caller then falls back to a kill.
    /// </para>
    /// </summary>
    internal static class WindowsConsole
    {
        private const uint CtrlBreakEvent = 1;
        private const uint AllOnThisConsole = 0;

        private delegate bool ConsoleCtrlHandler(uint ctrlType);

        // Referenced for as long as it is registered: native code calls it.
        private static readonly ConsoleCtrlHandler IgnoreInEditor = ctrlType => true;
        private static readonly object Gate = new object();

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool AttachConsole(uint processId);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool FreeConsole();

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool SetConsoleCtrlHandler(ConsoleCtrlHandler handler, bool add);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool GenerateConsoleCtrlEvent(uint ctrlEvent, uint processGroupId);

        /// <summary>
        /// Sends <c>CTRL_BREAK_EVENT</c> to <paramref name="process"/>'s console and waits up to
        /// <paramref name="grace"/> for it to exit (the editor's handler must outlive the event's
        /// delivery). False when the event could not be sent: the caller kills instead.
        /// </summary>
        public static bool SendCtrlBreak(Process process, TimeSpan grace)
        {
            lock (Gate)
            {
                // AttachConsole resets this process's handler list: register after it.
                if (!AttachConsole((uint)process.Id)) return false;
                bool ignoring = false;
                try
                {
                    ignoring = SetConsoleCtrlHandler(IgnoreInEditor, true);
                    if (!ignoring || !GenerateConsoleCtrlEvent(CtrlBreakEvent, AllOnThisConsole))
                        return false;
                    process.WaitForExit((int)grace.TotalMilliseconds);
                    Thread.Sleep(500);   // the event's thread in the editor has run by now
                    return true;
                }
                finally
                {
                    if (ignoring) SetConsoleCtrlHandler(IgnoreInEditor, false);
                    FreeConsole();
                }
            }
        }
    }
}
