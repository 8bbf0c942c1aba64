using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEditor;
using Debug = UnityEngine.Debug;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Starts and stops a local <c>pixelkiln serve</c> from the editor. Readiness comes from the
    /// daemon's status over the client (<c>StatusAsync().Ready</c>, true after warm-up); its
    /// output is never parsed. The output goes to <c>Library/PixelKiln/daemon.log</c> (see
    /// <see cref="DaemonLog"/>), never through a pipe to the editor, so a domain reload cannot
    /// leave the daemon blocked on a full pipe; the log's last lines explain an early exit. The
    /// daemon's identity (process id and start time, <see cref="DaemonIdentity"/>) survives
    /// domain reloads (SessionState), so the window can still stop it afterwards, and never
    /// stops a process that merely reused the id.
    /// </summary>
    internal static class DaemonProcess
    {
        private const string IdentityKey = "PixelKiln.DaemonIdentity";
        private const string LogKey = "PixelKiln.DaemonLog";
        private const int LogLines = 40;

        /// <summary>The process we started (null if none, or it exited, or the id now names another process).</summary>
        public static Process Current
        {
            get
            {
                string identity = SessionState.GetString(IdentityKey, "");
                if (identity.Length == 0) return null;
                Process process = DaemonIdentity.Find(identity);
                if (process == null) SessionState.EraseString(IdentityKey);
                return process;
            }
        }

        public static bool IsRunning
        {
            get
            {
                Process process = Current;
                if (process == null) return false;
                process.Dispose();
                return true;
            }
        }

        /// <summary>The daemon's log file (the current or last daemon started in this editor session), or null.</summary>
        public static string LogPath
        {
            get
            {
                string path = SessionState.GetString(LogKey, "");
                return path.Length == 0 ? null : path;
            }
        }

        /// <summary>The last lines of the daemon's log and where the log is (for error messages).</summary>
        public static string RecentOutput
        {
            get { return DaemonLog.Describe(LogPath, LogLines); }
        }

        /// <summary>
        /// Starts <c>EXECUTABLE serve --port GRPC --ws-port WS [--model M] EXTRA</c> with its output
        /// in <c>Library/PixelKiln/daemon.log</c>. The executable is the <c>pixelkiln</c> script of
        /// the environment where PixelKiln is installed (for example <c>.venv/bin/pixelkiln</c> or
        /// <c>.venv\Scripts\pixelkiln.exe</c>), that environment's folder or the checkout holding
        /// it (see <see cref="DaemonCommand.Resolve"/>).
        /// </summary>
        public static Process Start(string executable, int grpcPort, int wsPort, string model, string extraArguments)
        {
            if (IsRunning) throw new InvalidOperationException("a PixelKiln daemon started by the editor is already running");
            string project = Directory.GetCurrentDirectory();
            LaunchCommand command;
            string logPath;
            try
            {
                string file = DaemonCommand.Resolve(executable, project);
                command = DaemonCommand.Launch(file, DaemonCommand.ServeArgumentList(grpcPort, wsPort, model), extraArguments);
                logPath = DaemonLog.Prepare(Path.Combine(project, "Library", "PixelKiln"));
            }
            catch (Exception e)
            {
                if (!(e is IOException) && !(e is ArgumentException)) throw;
                throw new InvalidOperationException(e.Message, e);
            }
            var info = new ProcessStartInfo(command.FileName, command.Arguments)
            {
                UseShellExecute = false,
                CreateNoWindow = true,
            };
            info.EnvironmentVariables[DaemonCommand.LogVariable] = logPath;
            // A file is block-buffered: flush each line so the log is current when it is shown.
            info.EnvironmentVariables["PYTHONUNBUFFERED"] = "1";
            // Python writes in the locale's code page on Windows: ask for UTF-8 (paths, prompts).
            info.EnvironmentVariables["PYTHONIOENCODING"] = "utf-8";
            SessionState.SetString(LogKey, logPath);
            Process process;
            try
            {
                process = Process.Start(info);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException("could not start '" + info.FileName + "' (" + e.Message
                    + "). Set the path of the pixelkiln executable in the PixelKiln window, for example "
                    + "<checkout>/.venv/bin/pixelkiln or <checkout>\\.venv\\Scripts\\pixelkiln.exe", e);
            }
            string identity = DaemonIdentity.Of(process);
            if (identity != null) SessionState.SetString(IdentityKey, identity);
            else Debug.LogWarning("PixelKiln: cannot read the start time of the daemon (pid " + process.Id
                + "); the window will not stop it after a script reload");
            return process;
        }

        /// <summary>
        /// Polls <paramref name="client"/> until the daemon reports ready (connecting as needed),
        /// the process exits (its last output is in the error), or <paramref name="timeout"/> passes.
        /// </summary>
        public static async Task<StatusResponse> WaitReadyAsync(PixelKilnClient client, Process process,
            TimeSpan timeout, CancellationToken cancellationToken)
        {
            DateTime deadline = DateTime.UtcNow + timeout;
            TimeSpan pause = TimeSpan.FromMilliseconds(200);
            Exception last = null;
            while (DateTime.UtcNow < deadline)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (process != null && process.HasExited)
                    throw new InvalidOperationException("the daemon exited with code " + process.ExitCode
                        + " before it was ready:\n" + RecentOutput);
                try
                {
                    if (!client.IsConnected) await client.ConnectAsync(cancellationToken);
                    StatusResponse status = await client.StatusAsync(cancellationToken);
                    if (status.Ready) return status;
                }
                catch (PixelKilnConnectionException e)
                {
                    last = e;   // still starting
                }
                await Task.Delay(pause, cancellationToken);
                pause = TimeSpan.FromMilliseconds(Math.Min(pause.TotalMilliseconds * 1.5, 2000));
            }
            throw new TimeoutException("the daemon was not ready within " + timeout.TotalSeconds + " s"
                + (last != null ? " (" + last.Message + ")" : "") + "\n" + RecentOutput);
        }

        /// <summary>
        /// Stops the daemon we started, gracefully (in-flight requests get the daemon's --grace),
        /// then kills it if it has not exited after <paramref name="grace"/>. macOS/Linux: SIGTERM.
        /// Windows: <c>CTRL_BREAK_EVENT</c> to the daemon's console (see <see cref="WindowsConsole"/>),
        /// which the daemon takes as SIGBREAK; a kill of the whole tree (cmd.exe, the launcher,
        /// Python and its runners) only where that cannot be sent or the daemon does not exit.
        /// </summary>
        public static async Task StopAsync(TimeSpan grace)
        {
            Process process = Current;
            SessionState.EraseString(IdentityKey);
            if (process == null) return;
            using (process)
            {
                bool windows = Environment.OSVersion.Platform == PlatformID.Win32NT;
                bool asked = windows
                    ? await Task.Run(() => WindowsConsole.SendCtrlBreak(process, grace))
                    : await SendTermAsync(process);
                // SendCtrlBreak has waited for the exit already (its handler must outlive the event).
                int wait = windows ? 0 : (int)grace.TotalMilliseconds;
                bool exited = asked && await Task.Run(() => process.WaitForExit(wait));
                if (!exited && !process.HasExited)
                {
                    if (windows) await KillTreeAsync(process);
                    if (!process.HasExited) process.Kill();
                    await Task.Run(() => process.WaitForExit(5000));
                }
            }
        }

        private static async Task KillTreeAsync(Process process)
        {
            try
            {
                using (Process kill = Process.Start(new ProcessStartInfo("taskkill", "/T /F /PID " + process.Id)
                {
                    UseShellExecute = false,
                    CreateNoWindow = true,
                }))
                {
                    await Task.Run(() => kill.WaitForExit(5000));
                }
            }
            catch (Exception)
            {
                // No taskkill: the caller kills cmd.exe at least.
            }
        }

        private static async Task<bool> SendTermAsync(Process process)
        {
            try
            {
                using (Process kill = Process.Start(new ProcessStartInfo("kill", "-TERM " + process.Id)
                {
                    UseShellExecute = false,
                    CreateNoWindow = true,
                }))
                {
                    await Task.Run(() => kill.WaitForExit(2000));
                    return kill.HasExited && kill.ExitCode == 0;
                }
            }
            catch (Exception)
            {
                return false;   // no kill(1): the caller kills
            }
        }
    }
}
