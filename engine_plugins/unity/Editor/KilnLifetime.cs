using UnityEditor;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Disposes the static <see cref="Kiln"/> client before every assembly reload (script
    /// changes, entering play mode with domain reload on) and when the editor quits, so its
    /// socket and receive thread never outlive the domain that created them. The PixelKiln
    /// window does the same for its own client (<c>PixelKilnWindow.Teardown</c>).
    /// </summary>
    [InitializeOnLoad]
    internal static class KilnLifetime
    {
        static KilnLifetime()
        {
            AssemblyReloadEvents.beforeAssemblyReload += Kiln.Shutdown;
            EditorApplication.quitting += Kiln.Shutdown;
        }
    }
}
