using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEditor;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Starts and stops a local <c>pixelkiln serve</c> from the editor. Readiness comes from the
    /// daemon's status over the client (<c>StatusAsync().Ready</c>, true after warm-up); stdout is
    /// never parsed. Its output is kept (last lines only) to explain an early exit. The process id
    /// survives domain reloads (SessionState), so the window can still stop it afterwards.
    /// </summary>
    internal static class DaemonProcess
    {
        private const string PidKey = "PixelKiln.DaemonPid";
        private const int LogLines = 40;
        private static readonly Queue<string> log = new Queue<string>();

        /// <summary>The process we started (null if none, or it exited).</summary>
        public static Process Current
        {
            get
            {
                int pid = SessionState.GetInt(PidKey, 0);
                if (pid == 0) return null;
                try
                {
                    Process process = Process.GetProcessById(pid);
                    if (!process.HasExited) return process;
                }
                catch (ArgumentException)
                {
                    // Not running any more.
                }
                catch (InvalidOperationException)
                {
                }
                SessionState.EraseInt(PidKey);
                return null;
            }
        }

        public static bool IsRunning
        {
            get { return Current != null; }
        }

        /// <summary>The last lines the daemon printed (for error messages only).</summary>
        public static string RecentOutput
        {
            get
            {
                lock (log) return string.Join("\n", log.ToArray());
            }
        }

        /// <summary>
        /// Starts <c>EXECUTABLE serve --port GRPC --ws-port WS [--model M] EXTRA</c>. The executable
        /// is the <c>pixelkiln</c> script of the environment where PixelKiln is installed (for
        /// example <c>.venv/bin/pixelkiln</c> or <c>.venv\Scripts\pixelkiln.exe</c>), that
        /// environment's folder or the checkout holding it (see <see cref="DaemonCommand.Resolve"/>).
        /// </summary>
        public static Process Start(string executable, int grpcPort, int wsPort, string model, string extraArguments)
        {
            if (IsRunning) throw new InvalidOperationException("a PixelKiln daemon started by the editor is already running");
            string arguments = DaemonCommand.ServeArguments(grpcPort, wsPort, model, extraArguments);
            string file;
            try
            {
                file = DaemonCommand.Resolve(executable, System.IO.Directory.GetCurrentDirectory());
            }
            catch (System.IO.FileNotFoundException e)
            {
                throw new InvalidOperationException(e.Message, e);
            }
            var info = new ProcessStartInfo(file, arguments)
            {
                UseShellExecute = false,
                CreateNoWindow = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                StandardOutputEncoding = System.Text.Encoding.UTF8,
                StandardErrorEncoding = System.Text.Encoding.UTF8,
            };
            // Python writes pipes in the locale's code page on Windows: ask for UTF-8 (paths, prompts).
            info.EnvironmentVariables["PYTHONIOENCODING"] = "utf-8";
            lock (log) log.Clear();
            var process = new Process { StartInfo = info, EnableRaisingEvents = true };
            process.OutputDataReceived += (sender, line) => Remember(line.Data);
            process.ErrorDataReceived += (sender, line) => Remember(line.Data);
            try
            {
                process.Start();
            }
            catch (Exception e)
            {
                throw new InvalidOperationException("could not start '" + info.FileName + "' (" + e.Message
                    + "). Set the path of the pixelkiln executable in the PixelKiln window, for example "
                    + "<checkout>/.venv/bin/pixelkiln or <checkout>\\.venv\\Scripts\\pixelkiln.exe", e);
            }
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            SessionState.SetInt(PidKey, process.Id);
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
        /// which the daemon takes as SIGBREAK; a kill only where that cannot be sent.
        /// </summary>
        public static async Task StopAsync(TimeSpan grace)
        {
            Process process = Current;
            SessionState.EraseInt(PidKey);
            if (process == null) return;
            bool windows = Environment.OSVersion.Platform == PlatformID.Win32NT;
            bool asked = windows
                ? await Task.Run(() => WindowsConsole.SendCtrlBreak(process, grace))
                : await SendTermAsync(process);
            // SendCtrlBreak has waited for the exit already (its handler must outlive the event).
            int wait = windows ? 0 : (int)grace.TotalMilliseconds;
            bool exited = asked && await Task.Run(() => process.WaitForExit(wait));
            if (!exited && !process.HasExited)
            {
                process.Kill();
                await Task.Run(() => process.WaitForExit(5000));
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

        private static void Remember(string line)
        {
            if (line == null) return;
            lock (log)
            {
                log.Enqueue(line);
                while (log.Count > LogLines) log.Dequeue();
            }
        }
    }
}
