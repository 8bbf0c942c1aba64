using System;
using System.Globalization;
using System.IO;
using System.Text;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Reads an atlas frame map (a UTF-8 file, argv[0]) with the Unity package's AtlasFrameMap
    /// (engine_plugins/unity/Editor/AtlasFrameMap.cs) for tests/clients/test_unity_atlas.py and
    /// prints <c>WIDTH HEIGHT</c>, then per frame <c>NAME X UNITY_Y W H</c> (Unity's bottom-left
    /// origin; a trimmed frame adds <c>pivot PX PY</c>), or "error: MESSAGE" (exit 3).
    /// </summary>
    public static class AtlasCheck
    {
        public static int Main(string[] argv)
        {
            var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false));
            try
            {
                AtlasFrameMap map = AtlasFrameMap.Parse(File.ReadAllText(argv[0], Encoding.UTF8));
                stdout.WriteLine(map.Width + " " + map.Height);
                foreach (AtlasFrame frame in map.Frames)
                {
                    string line = frame.Name + "\t" + frame.X + " " + map.UnityY(frame) + " " + frame.Width + " " + frame.Height;
                    if (frame.PivotX != 0.5f || frame.PivotY != 0.5f)
                        line += " pivot " + frame.PivotX.ToString("R", CultureInfo.InvariantCulture) + " "
                            + frame.PivotY.ToString("R", CultureInfo.InvariantCulture);
                    stdout.WriteLine(line);
                }
                return 0;
            }
            catch (FormatException e)
            {
                stdout.WriteLine("error: " + e.Message);
                return 3;
            }
            finally
            {
                stdout.Flush();
            }
        }
    }
}
