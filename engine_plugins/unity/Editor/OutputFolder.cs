using System;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// The folder results are saved to: project-relative, under the Assets folder, with forward
    /// slashes. A "." or ".." part is refused ("Assets/../../outside" would leave the project),
    /// as is an empty part ("Assets//x"); empty means <see cref="Default"/>.
    /// </summary>
    internal static class OutputFolder
    {
        public const string Default = "Assets/PixelKiln";

        public static string Check(string folder)
        {
            folder = (string.IsNullOrEmpty(folder) ? Default : folder).Replace('\\', '/').TrimEnd('/');
            string[] parts = folder.Split('/');
            bool inside = parts[0] == "Assets";
            foreach (string part in parts)
                inside &= part.Length > 0 && part != "." && part != "..";
            if (!inside)
                throw new ArgumentException("the output folder must be inside the project's Assets folder, like "
                    + Default + ", without '.' or '..' parts (got '" + folder + "')");
            return folder;
        }
    }
}
