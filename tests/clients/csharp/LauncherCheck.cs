using System;
using System.Diagnostics;
using System.IO;
using System.Text;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Runs the Unity window's launcher logic (engine_plugins/unity/Editor/DaemonCommand.cs,
    /// DaemonLog.cs, DaemonIdentity.cs) under mono for tests/clients/test_unity_launcher.py.
    /// Arguments come UTF-8 encoded in a file, one per line (no locale between Python and mono);
    /// answers go to stdout as UTF-8.
    /// <c>resolve CONFIGURED PROJECT</c>: the executable, or "error: MESSAGE" (exit 3).
    /// <c>run CONFIGURED PROJECT MODEL LOGDIR</c>: starts it as the window does (serve arguments,
    /// output to LOGDIR/daemon.log), waits, and prints the log; exits with its exit code.
    /// <c>quote-windows VALUE</c>: the argument as quoted for Windows' CommandLineToArgvW.
    /// <c>launch-windows EXE EXTRA ARG...</c>: cmd.exe's arguments for Windows, or "error: MESSAGE" (exit 4).
    /// <c>identity</c>: the pid + start time checks against a real child process.
    /// <c>prepare FOLDER</c> / <c>tail FILE LINES</c>: DaemonLog.
    /// </summary>
    public static class LauncherCheck
    {
        public static int Main(string[] argv)
        {
            string[] args = File.ReadAllLines(argv[0], Encoding.UTF8);
            var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false));
            try
            {
                switch (args[0])
                {
                    case "quote-windows":
                        stdout.WriteLine(DaemonCommand.Quote(args[1], false));
                        return 0;
                    case "launch-windows":
                        return LaunchWindows(args, stdout);
                    case "identity":
                        return Identity(stdout);
                    case "prepare":
                        stdout.WriteLine(DaemonLog.Prepare(args[1]));
                        return 0;
                    case "tail":
                        stdout.Write(DaemonLog.Tail(args[1], int.Parse(args[2])));
                        return 0;
                }
                string executable;
                try
                {
                    executable = DaemonCommand.Resolve(args[1], args[2]);
                }
                catch (FileNotFoundException e)
                {
                    stdout.WriteLine("error: " + e.Message);
                    return 3;
                }
                if (args[0] == "resolve")
                {
                    stdout.WriteLine(executable);
                    return 0;
                }
                return Run(executable, args[3], args[4], stdout);
            }
            finally
            {
                stdout.Flush();
            }
        }

        private static int Run(string executable, string model, string logFolder, StreamWriter stdout)
        {
            LaunchCommand command = DaemonCommand.Launch(executable,
                DaemonCommand.ServeArgumentList(50051, 50052, model), "--offline");
            string log = DaemonLog.Prepare(logFolder);
            var info = new ProcessStartInfo(command.FileName, command.Arguments) { UseShellExecute = false };
            info.EnvironmentVariables[DaemonCommand.LogVariable] = log;
            using (Process process = Process.Start(info))
            {
                process.WaitForExit();
                stdout.Write(File.ReadAllText(log, Encoding.UTF8));
                return process.ExitCode;
            }
        }

        private static int LaunchWindows(string[] args, StreamWriter stdout)
        {
            var arguments = new string[args.Length - 3];
            Array.Copy(args, 3, arguments, 0, arguments.Length);
            try
            {
                stdout.WriteLine(DaemonCommand.Launch(args[1], arguments, args[2], true, false).Arguments);
                return 0;
            }
            catch (ArgumentException e)
            {
                stdout.WriteLine("error: " + e.Message);
                return 4;
            }
        }

        private static int Identity(StreamWriter stdout)
        {
            using (Process child = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false }))
            {
                string identity = DaemonIdentity.Of(child);
                int pid;
                long ticks;
                DaemonIdentity.TryParse(identity, out pid, out ticks);
                stdout.WriteLine("pid_matches=" + (pid == child.Id));
                stdout.WriteLine("found=" + Found(identity, child.Id));
                // The same pid with another start time: a process that reused the id.
                long other = ticks - TimeSpan.FromSeconds(30).Ticks;
                stdout.WriteLine("reused_found=" + Found(pid + "@" + other, -1));
                stdout.WriteLine("within_tolerance_found=" + Found(pid + "@" + (ticks + TimeSpan.FromMilliseconds(500).Ticks), child.Id));
                foreach (string bad in new[] { "", "garbage", pid.ToString(), "@" + ticks, "-1@5", pid + "@x" })
                    stdout.WriteLine("malformed_found[" + bad + "]=" + Found(bad, -1));
                child.Kill();
                child.WaitForExit();
                stdout.WriteLine("exited_found=" + Found(identity, -1));
                return 0;
            }
        }

        private static string Found(string identity, int expectedPid)
        {
            using (Process process = DaemonIdentity.Find(identity))
            {
                if (process == null) return "none";
                return process.Id == expectedPid ? "same" : "other pid " + process.Id;
            }
        }
    }
}
