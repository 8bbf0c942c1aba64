using System;
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

        /// <summary><c>serve --port GRPC --ws-port WS [--model M] EXTRA</c>; EXTRA as typed.</summary>
        public static string ServeArguments(int grpcPort, int wsPort, string model, string extraArguments)
        {
            string arguments = "serve --port " + grpcPort + " --ws-port " + wsPort;
            if (!string.IsNullOrEmpty(model)) arguments += " --model " + Quote(model);
            if (!string.IsNullOrEmpty(extraArguments)) arguments += " " + extraArguments;
            return arguments;
        }

        /// <summary>
        /// One argument for <c>ProcessStartInfo.Arguments</c>. Windows (and .NET on any OS) splits
        /// them by the CommandLineToArgvW rules: backslashes are literal except before a quote.
        /// Mono on macOS/Linux (Unity's editor there) splits them like a POSIX shell: inside
        /// double quotes a backslash escapes the next backslash or quote.
        /// </summary>
        public static string Quote(string value)
        {
            return Quote(value, !Windows && Type.GetType("Mono.Runtime") != null);
        }

        /// <summary><see cref="Quote(string)"/> for one of the two ways of splitting.</summary>
        public static string Quote(string value, bool posixShellSplitting)
        {
            if (value.Length > 0 && value.IndexOfAny(new[] { ' ', '\t', '"', '\'', '\\' }) < 0) return value;
            if (posixShellSplitting)
                return "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
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
}
