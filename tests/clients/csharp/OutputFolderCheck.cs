using System;
using PixelKiln.Unity.Editor;

// Prints the folder OutputFolder.Check makes of each argument, or "refused: <message>".
internal static class OutputFolderCheck
{
    private static void Main(string[] args)
    {
        foreach (string folder in args)
        {
            try { Console.WriteLine(OutputFolder.Check(folder)); }
            catch (ArgumentException e) { Console.WriteLine("refused: " + e.Message); }
        }
    }
}
