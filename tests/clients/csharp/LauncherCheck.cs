using System;
using System.Diagnostics;
using System.IO;
using System.Text;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Runs the Unity window's DaemonCommand (engine_plugins/unity/Editor/DaemonCommand.cs) under
    /// mono for tests/clients/test_unity_launcher.py. Arguments come UTF-8 encoded in a file (no
    /// locale between Python and mono); answers go to stdout as UTF-8.
    /// <c>resolve CONFIGURED PROJECT</c>: the executable, or "error: MESSAGE".
    /// <c>run CONFIGURED PROJECT MODEL</c>: starts it with the serve arguments, echoes its output.
    /// <c>quote-windows VALUE</c>: the argument as quoted for Windows' CommandLineToArgvW.
    /// </summary>
    public static class LauncherCheck
    {
        public static int Main(string[] argv)
        {
            string[] args = File.ReadAllLines(argv[0], Encoding.UTF8);
            var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false));
            try
            {
                if (args[0] == "quote-windows")
                {
                    stdout.WriteLine(DaemonCommand.Quote(args[1], false));
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
                var info = new ProcessStartInfo(executable, DaemonCommand.ServeArguments(50051, 50052, args[3], "--offline"))
                {
                    UseShellExecute = false,
                    RedirectStandardOutput = true,
                    StandardOutputEncoding = Encoding.UTF8,
                };
                using (Process process = Process.Start(info))
                {
                    stdout.Write(process.StandardOutput.ReadToEnd());
                    process.WaitForExit();
                    return process.ExitCode;
                }
            }
            finally
            {
                stdout.Flush();
            }
        }
    }
}
