using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// The daemon's command line on every OS: which <c>pixelkiln</c> to run (a file, a virtual
    /// environment or a PixelKiln checkout, or a name on PATH) and its arguments, quoted so that
    /// paths with spaces, quotes and non-ASCII characters arrive as one argument each. No Unity
    /// types: tests/clients compiles and runs it with mono.
    /// </summary>
    internal static class DaemonCommand
    {
        private static bool Windows
        {
            get { return Environment.OSVersion.Platform == PlatformID.Win32NT; }
        }

        /// <summary>Where <c>pixelkiln</c> sits inside a folder, this OS's layout first.</summary>
        public static string[] Candidates(string folder)
        {
            string windows = Path.Combine(folder, "Scripts", "pixelkiln.exe");
            string posix = Path.Combine(folder, "bin", "pixelkiln");
            string venvWindows = Path.Combine(folder, ".venv", "Scripts", "pixelkiln.exe");
            string venvPosix = Path.Combine(folder, ".venv", "bin", "pixelkiln");
            return Windows
                ? new[] { windows, venvWindows, posix, venvPosix }
                : new[] { posix, venvPosix, windows, venvWindows };
        }

        /// <summary>
        /// The executable to start for the window's <c>Executable</c> field: a file as given
        /// (<c>.exe</c> added on Windows when missing); a folder searched for
        /// <c>Scripts\pixelkiln.exe</c>, <c>bin/pixelkiln</c> or the same under <c>.venv</c>;
        /// an empty field or a bare <c>pixelkiln</c> looked for in <paramref name="projectFolder"/>
        /// and its parent's <c>.venv</c> before PATH. Throws when a path is given but holds none.
        /// </summary>
        public static string Resolve(string configured, string projectFolder)
        {
            string value = (configured ?? "").Trim().Trim('"');
            if (value.Length == 0) value = "pixelkiln";
            bool bare = value.IndexOf('/') < 0 && value.IndexOf('\\') < 0;
            if (bare && !string.IsNullOrEmpty(projectFolder))
            {
                string parent = Path.GetDirectoryName(Path.GetFullPath(projectFolder));
                foreach (string folder in new[] { projectFolder, parent })
                {
                    if (folder == null) continue;
                    string found = FindIn(Path.Combine(folder, ".venv"));
                    if (found != null) return found;
                }
                return value;   // on PATH
            }
            if (File.Exists(value)) return Path.GetFullPath(value);
            if (Windows && File.Exists(value + ".exe")) return Path.GetFullPath(value + ".exe");
            if (Directory.Exists(value))
            {
                string found = FindIn(value);
                if (found != null) return found;
                throw new FileNotFoundException("no pixelkiln executable in '" + value + "' (looked for "
                    + string.Join(", ", Candidates(value)) + ")");
            }
            if (bare) return value;
            throw new FileNotFoundException("'" + value + "' does not exist. Give the pixelkiln executable, "
                + "for example <checkout>/.venv/bin/pixelkiln or <checkout>\\.venv\\Scripts\\pixelkiln.exe");
        }

        private static string FindIn(string folder)
        {
            if (!Directory.Exists(folder)) return null;
            foreach (string candidate in Candidates(folder))
                if (File.Exists(candidate)) return Path.GetFullPath(candidate);
            return null;
        }

        /// <summary>The environment variable that carries the log file's path to the launch shell.</summary>
        public const string LogVariable = "PIXELKILN_DAEMON_LOG";

        // POSIX: the shell replaces itself with the daemon (same pid, so SIGTERM reaches Python
        // directly) after pointing stdout and stderr at the log. The paths travel as arguments
        // and in the environment, never inside the script: nothing in them is shell syntax.
        private const string PosixScript = "exec \"$0\" \"$@\" >\"$" + LogVariable + "\" 2>&1";

        /// <summary><c>serve --port GRPC --ws-port WS [--model M]</c>, one entry per argument.</summary>
        public static string[] ServeArgumentList(int grpcPort, int wsPort, string model)
        {
            var arguments = new List<string> { "serve", "--port", grpcPort.ToString(), "--ws-port", wsPort.ToString() };
            if (!string.IsNullOrEmpty(model))
            {
                arguments.Add("--model");
                arguments.Add(model);
            }
            return arguments.ToArray();
        }

        /// <summary>
        /// How to start <paramref name="executable"/> with <paramref name="arguments"/> (each one
        /// argument) and <paramref name="extraArguments"/> (a command line as the user typed it)
        /// so that its stdout and stderr go to the file named by the <see cref="LogVariable"/>
        /// environment variable of the new process, and the editor holds no pipe to it. The
        /// daemon's runner processes inherit the same file. macOS/Linux: <c>/bin/sh -c 'exec ...'</c>
        /// (the process is the daemon itself). Windows: <c>cmd.exe /d /v:off /s /c "... >"%PIXELKILN_DAEMON_LOG%" 2>&amp;1"</c>
        /// (the process is cmd.exe, the daemon its child on the same hidden console). Throws
        /// <see cref="ArgumentException"/> for what cmd.exe cannot pass through unchanged.
        /// </summary>
        public static LaunchCommand Launch(string executable, string[] arguments, string extraArguments)
        {
            return Launch(executable, arguments, extraArguments, Windows, PosixShellSplitting);
        }

        /// <summary><see cref="Launch(string, string[], string)"/> for a given OS and way of splitting.</summary>
        public static LaunchCommand Launch(string executable, string[] arguments, string extraArguments,
            bool windows, bool posixShellSplitting)
        {
            if (windows) return LaunchWithCmd(executable, arguments, extraArguments);
            var line = new StringBuilder("-c ");
            line.Append(Quote(PosixScript, posixShellSplitting));
            line.Append(' ').Append(Quote(executable, posixShellSplitting));
            foreach (string argument in arguments) line.Append(' ').Append(Quote(argument, posixShellSplitting));
            if (!string.IsNullOrEmpty(extraArguments)) line.Append(' ').Append(extraArguments);
            return new LaunchCommand("/bin/sh", line.ToString());
        }

        private static LaunchCommand LaunchWithCmd(string executable, string[] arguments, string extraArguments)
        {
            var line = new StringBuilder("/d /v:off /s /c \"");
            line.Append(CmdQuote(executable, "the executable's path"));
            foreach (string argument in arguments) line.Append(' ').Append(CmdQuote(argument, "an argument"));
            if (!string.IsNullOrEmpty(extraArguments)) line.Append(' ').Append(CmdEscape(extraArguments));
            line.Append(" >\"%" + LogVariable + "%\" 2>&1\"");
            string shell = Environment.GetEnvironmentVariable("ComSpec");
            return new LaunchCommand(string.IsNullOrEmpty(shell) ? "cmd.exe" : shell, line.ToString());
        }

        /// <summary>
        /// One argument for cmd.exe and then CommandLineToArgvW: always in double quotes, so
        /// that cmd.exe's operators (&amp; | &lt; &gt; ( ) ^) inside it are plain characters.
        /// cmd.exe expands <c>%NAME%</c> even inside quotes and cannot escape a quote there:
        /// values with <c>%</c> or <c>"</c> are refused (neither occurs in a Windows path).
        /// </summary>
        public static string CmdQuote(string value, string what)
        {
            if (value.IndexOf('%') >= 0 || value.IndexOf('"') >= 0)
                throw new ArgumentException(what + " '" + value + "' contains % or \", which cmd.exe cannot "
                    + "pass to the daemon unchanged on Windows; rename it or start the daemon in a terminal");
            return QuoteForArgv(value, true);
        }

        /// <summary>
        /// The user's extra arguments for cmd.exe: operators outside double quotes escaped with
        /// <c>^</c>; <c>%</c> and unbalanced quotes refused (cmd.exe would expand or misread them).
        /// </summary>
        public static string CmdEscape(string commandLine)
        {
            if (commandLine.IndexOf('%') >= 0)
                throw new ArgumentException("the extra arguments contain %, which cmd.exe would expand on Windows");
            var escaped = new StringBuilder();
            bool quoted = false;
            foreach (char c in commandLine)
            {
                if (c == '"') quoted = !quoted;
                else if (!quoted && "&|<>()^".IndexOf(c) >= 0) escaped.Append('^');
                escaped.Append(c);
            }
            if (quoted) throw new ArgumentException("the extra arguments have an unbalanced double quote");
            return escaped.ToString();
        }

        private static bool PosixShellSplitting
        {
            get { return !Windows && Type.GetType("Mono.Runtime") != null; }
        }

        /// <summary>
        /// One argument for <c>ProcessStartInfo.Arguments</c>. Windows (and .NET on any OS) splits
        /// them by the CommandLineToArgvW rules: backslashes are literal except before a quote.
        /// Mono on macOS/Linux (Unity's editor there) splits them like a POSIX shell: inside
        /// double quotes a backslash escapes the next backslash or quote.
        /// </summary>
        public static string Quote(string value)
        {
            return Quote(value, PosixShellSplitting);
        }

        /// <summary><see cref="Quote(string)"/> for one of the two ways of splitting.</summary>
        public static string Quote(string value, bool posixShellSplitting)
        {
            if (value.Length > 0 && value.IndexOfAny(new[] { ' ', '\t', '"', '\'', '\\', '$', '`' }) < 0) return value;
            if (posixShellSplitting)
                return "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
            return QuoteForArgv(value, false);
        }

        private static string QuoteForArgv(string value, bool always)
        {
            if (!always && value.Length > 0 && value.IndexOfAny(new[] { ' ', '\t', '"' }) < 0) return value;
            var quoted = new StringBuilder("\"");
            int backslashes = 0;
            foreach (char c in value)
            {
                if (c == '\\')
                {
                    backslashes++;
                    continue;
                }
                quoted.Append('\\', c == '"' ? backslashes * 2 + 1 : backslashes);
                quoted.Append(c);
                backslashes = 0;
            }
            quoted.Append('\\', backslashes * 2);
            quoted.Append('"');
            return quoted.ToString();
        }
    }

    /// <summary>A program and its <c>ProcessStartInfo.Arguments</c> (see <see cref="DaemonCommand.Launch(string, string[], string)"/>).</summary>
    internal sealed class LaunchCommand
    {
        public LaunchCommand(string fileName, string arguments)
        {
            FileName = fileName;
            Arguments = arguments;
        }

        public string FileName { get; private set; }

        public string Arguments { get; private set; }
    }
}
