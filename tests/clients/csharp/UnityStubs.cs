// COMPILE-ONLY STAND-IN for the parts of UnityEngine / UnityEditor that the PixelKiln Unity
// package uses. NOT SHIPPED, NOT Unity: no member does anything. It exists so that
// tests/clients/test_csharp_client.py can type-check engine_plugins/unity/{Runtime,Editor}
// with mono's mcs, where Unity's own assemblies are not available. Each signature copies the
// Unity 2021.3 scripting reference for the overload the package calls; a member missing here
// is a compile error in the test, which is the point: add it only after checking that it
// exists in Unity 2021.3 with the same signature.
//
// Built twice: without defines as UnityEngine.dll, with -define:PIXELKILN_STUB_EDITOR (and a
// reference to the first) as UnityEditor.dll, so the Runtime assembly cannot see UnityEditor.

#pragma warning disable 67, 649, 1591

#if !PIXELKILN_STUB_EDITOR
namespace UnityEngine
{
    using System;
    using System.Collections;

    public enum HideFlags { None = 0, HideInHierarchy = 1, HideInInspector = 2, DontSaveInEditor = 4, NotEditable = 8, DontSaveInBuild = 16, DontUnloadUnusedAsset = 32, DontSave = 52, HideAndDontSave = 61 }

    public class Object
    {
        public string name { get; set; }
        public HideFlags hideFlags { get; set; }
        public static void Destroy(Object obj) { }
        public static void DestroyImmediate(Object obj) { }
    }

    public class ScriptableObject : Object { }
    public class Component : Object { }
    public class Behaviour : Component { public bool enabled { get; set; } }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute { }

    public enum SpriteAlignment { Center = 0, TopLeft = 1, TopCenter = 2, TopRight = 3, LeftCenter = 4, RightCenter = 5, BottomLeft = 6, BottomCenter = 7, BottomRight = 8, Custom = 9 }

    public enum TextureFormat { Alpha8 = 1, ARGB4444 = 2, RGB24 = 3, RGBA32 = 4, ARGB32 = 5 }
    public enum TextureWrapMode { Repeat = 0, Clamp = 1, Mirror = 2, MirrorOnce = 3 }
    public enum FilterMode { Point = 0, Bilinear = 1, Trilinear = 2 }
    public enum ScaleMode { StretchToFill = 0, ScaleAndCrop = 1, ScaleToFit = 2 }

    public class Texture : Object
    {
        public virtual int width { get { return 0; } set { } }
        public virtual int height { get { return 0; } set { } }
        public TextureWrapMode wrapMode { get; set; }
        public TextureWrapMode wrapModeU { get; set; }
        public TextureWrapMode wrapModeV { get; set; }
        public FilterMode filterMode { get; set; }
    }

    public sealed class Texture2D : Texture
    {
        public Texture2D(int width, int height) { }
        public Texture2D(int width, int height, TextureFormat textureFormat, bool mipChain) { }
        public Texture2D(int width, int height, TextureFormat textureFormat, bool mipChain, bool linear) { }
        public void LoadRawTextureData(byte[] data) { }
        public void Apply(bool updateMipmaps = true, bool makeNoLongerReadable = false) { }
        public void ReadPixels(Rect source, int destX, int destY, bool recalculateMipMaps = true) { }
    }

    public static class ImageConversion
    {
        public static bool LoadImage(this Texture2D tex, byte[] data, bool markNonReadable) { return true; }
        public static bool LoadImage(this Texture2D tex, byte[] data) { return true; }
        public static byte[] EncodeToPNG(this Texture2D tex) { return new byte[0]; }
        public static byte[] EncodeToJPG(this Texture2D tex, int quality) { return new byte[0]; }
        public static byte[] EncodeToJPG(this Texture2D tex) { return new byte[0]; }
    }

    public class RenderTexture : Texture
    {
        public static RenderTexture active { get; set; }
        public static RenderTexture GetTemporary(int width, int height, int depthBuffer) { return new RenderTexture(); }
        public static void ReleaseTemporary(RenderTexture temp) { }
    }

    public sealed class Camera : Behaviour
    {
        public RenderTexture targetTexture { get; set; }
        public void Render() { }
    }

    public sealed class Graphics
    {
        public static void Blit(Texture source, RenderTexture dest) { }
    }

    public struct Rect
    {
        public Rect(float x, float y, float width, float height) : this() { }
        public float x { get; set; }
        public float y { get; set; }
        public float width { get; set; }
        public float height { get; set; }
    }

    public struct Vector2
    {
        public float x;
        public float y;
        public Vector2(float x, float y) { this.x = x; this.y = y; }
    }

    public class GUIContent
    {
        public GUIContent() { }
        public GUIContent(string text) { }
        public GUIContent(string text, string tooltip) { }
    }

    public sealed class GUIStyle { }
    public sealed class GUILayoutOption { }

    public class GUILayout
    {
        public static bool Button(string text, params GUILayoutOption[] options) { return false; }
        public static bool Button(GUIContent content, params GUILayoutOption[] options) { return false; }
        public static GUILayoutOption Width(float width) { return null; }
        public static GUILayoutOption MinHeight(float minHeight) { return null; }
        public static GUILayoutOption ExpandWidth(bool expand) { return null; }
    }

    public class GUILayoutUtility
    {
        public static Rect GetRect(float width, float height, params GUILayoutOption[] options) { return new Rect(); }
    }

    public class GUI
    {
        public static bool enabled { get; set; }
        public static void DrawTexture(Rect position, Texture image, ScaleMode scaleMode, bool alphaBlend) { }
    }

    public abstract class CustomYieldInstruction : IEnumerator
    {
        public abstract bool keepWaiting { get; }
        public object Current { get { return null; } }
        public bool MoveNext() { return keepWaiting; }
        public virtual void Reset() { }
    }

    public class Debug
    {
        public static void Log(object message) { }
        public static void LogWarning(object message) { }
        public static void LogError(object message) { }
        public static void LogException(Exception exception) { }
    }

    public class Application
    {
        public static bool isPlaying { get { return false; } }
        public static event Action quitting;
    }

    public enum RuntimeInitializeLoadType { AfterSceneLoad = 0, BeforeSceneLoad = 1, AfterAssembliesLoaded = 2, BeforeSplashScreen = 3, SubsystemRegistration = 4 }

    [AttributeUsage(AttributeTargets.Method)]
    public sealed class RuntimeInitializeOnLoadMethodAttribute : Attribute
    {
        public RuntimeInitializeOnLoadMethodAttribute() { }
        public RuntimeInitializeOnLoadMethodAttribute(RuntimeInitializeLoadType loadType) { }
    }
}
#else
namespace UnityEditor
{
    using System;
    using UnityEngine;

    [AttributeUsage(AttributeTargets.Class)]
    public class InitializeOnLoadAttribute : Attribute { }

    [AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
    public sealed class MenuItem : Attribute
    {
        public MenuItem(string itemName) { }
    }

    public enum MessageType { None = 0, Info = 1, Warning = 2, Error = 3 }

    // Not used by the package; here because its name collides with PixelKiln.V1.Progress in a
    // file that imports both namespaces, as it does in Unity 2020.1+.
    public static class Progress { }

    public class EditorWindow : ScriptableObject
    {
        public static T GetWindow<T>(string title) where T : EditorWindow { return null; }
        public void Repaint() { }
    }

    public class SceneView : EditorWindow
    {
        public static SceneView lastActiveSceneView { get { return null; } }
        public Camera camera { get { return null; } }
    }

    public sealed class EditorApplication
    {
        public delegate void CallbackFunction();
        public static CallbackFunction update;
        public static double timeSinceStartup { get { return 0; } }
        public static event Action quitting;
    }

    public struct GUID
    {
        public static GUID Generate() { return new GUID(); }
    }

    public static class AssemblyReloadEvents
    {
        public delegate void AssemblyReloadCallback();
        public static event AssemblyReloadCallback beforeAssemblyReload;
    }

    public sealed class EditorPrefs
    {
        public static string GetString(string key, string defaultValue) { return defaultValue; }
        public static void SetString(string key, string value) { }
        public static bool GetBool(string key, bool defaultValue) { return defaultValue; }
        public static void SetBool(string key, bool value) { }
    }

    public sealed class EditorUtility
    {
        public static string OpenFilePanel(string title, string directory, string extension) { return ""; }
        public static void RevealInFinder(string path) { }
    }

    public class SessionState
    {
        public static int GetInt(string key, int defaultValue) { return defaultValue; }
        public static void SetInt(string key, int value) { }
        public static void EraseInt(string key) { }
        public static string GetString(string key, string defaultValue) { return defaultValue; }
        public static void SetString(string key, string value) { }
        public static void EraseString(string key) { }
    }

    [Flags]
    public enum ImportAssetOptions { Default = 0, ForceUpdate = 1, ForceSynchronousImport = 8, ImportRecursive = 256, DontDownloadFromCacheServer = 8192, ForceUncompressedImport = 16384 }

    public sealed class AssetDatabase
    {
        public static void ImportAsset(string path, ImportAssetOptions options) { }
        public static void StartAssetEditing() { }
        public static void StopAssetEditing() { }
        public static T LoadAssetAtPath<T>(string assetPath) where T : UnityEngine.Object { return null; }
    }

    public class AssetImporter : UnityEngine.Object
    {
        public string userData { get; set; }
        public string assetPath { get { return ""; } }
        public static AssetImporter GetAtPath(string path) { return null; }
        public void SaveAndReimport() { }
    }

    public enum TextureImporterType { Default = 0, NormalMap = 1, GUI = 2, Sprite = 8, Cursor = 7, Cookie = 4, Lightmap = 6, SingleChannel = 10 }
    public enum SpriteImportMode { None = 0, Single = 1, Multiple = 2, Polygon = 3 }
    public enum TextureImporterAlphaSource { None = 0, FromInput = 1, FromGrayScale = 2 }

    public sealed class TextureImporter : AssetImporter
    {
        public TextureImporterType textureType { get; set; }
        public SpriteImportMode spriteImportMode { get; set; }
        public TextureImporterAlphaSource alphaSource { get; set; }
        public bool alphaIsTransparency { get; set; }
        public bool mipmapEnabled { get; set; }
        public bool sRGBTexture { get; set; }
        public TextureWrapMode wrapModeU { get; set; }
        public TextureWrapMode wrapModeV { get; set; }
    }

    public class AssetPostprocessor
    {
        public string assetPath { get { return ""; } }
        public AssetImporter assetImporter { get { return null; } }
    }

    public sealed class EditorGUIUtility
    {
        public static void PingObject(UnityEngine.Object obj) { }
    }

    public sealed class EditorStyles
    {
        public static GUIStyle boldLabel { get { return null; } }
        public static GUIStyle miniBoldLabel { get { return null; } }
        public static GUIStyle miniLabel { get { return null; } }
        public static GUIStyle wordWrappedLabel { get { return null; } }
    }

    public sealed class EditorGUI
    {
        public static void ProgressBar(Rect position, float value, string text) { }
    }

    public sealed class EditorGUILayout
    {
        public static Vector2 BeginScrollView(Vector2 scrollPosition, params GUILayoutOption[] options) { return scrollPosition; }
        public static void EndScrollView() { }
        public static Rect BeginHorizontal(params GUILayoutOption[] options) { return new Rect(); }
        public static void EndHorizontal() { }
        public static void Space() { }
        public static void HelpBox(string message, MessageType type) { }
        public static void PrefixLabel(string label) { }
        public static void LabelField(string label, params GUILayoutOption[] options) { }
        public static void LabelField(string label, GUIStyle style, params GUILayoutOption[] options) { }
        public static void LabelField(string label, string label2, GUIStyle style, params GUILayoutOption[] options) { }
        public static string TextField(string label, string text, params GUILayoutOption[] options) { return text; }
        public static string TextField(GUIContent label, string text, params GUILayoutOption[] options) { return text; }
        public static string TextArea(string text, params GUILayoutOption[] options) { return text; }
        public static string PasswordField(GUIContent label, string password, params GUILayoutOption[] options) { return password; }
        public static int IntField(GUIContent label, int value, params GUILayoutOption[] options) { return value; }
        public static long LongField(long value, params GUILayoutOption[] options) { return value; }
        public static bool Toggle(string label, bool value, params GUILayoutOption[] options) { return value; }
        public static bool Toggle(GUIContent label, bool value, params GUILayoutOption[] options) { return value; }
        public static bool ToggleLeft(string label, bool value, params GUILayoutOption[] options) { return value; }
        public static int IntSlider(string label, int value, int leftValue, int rightValue, params GUILayoutOption[] options) { return value; }
        public static int IntSlider(GUIContent label, int value, int leftValue, int rightValue, params GUILayoutOption[] options) { return value; }
        public static float Slider(GUIContent label, float value, float leftValue, float rightValue, params GUILayoutOption[] options) { return value; }
        public static int Popup(string label, int selectedIndex, string[] displayedOptions, params GUILayoutOption[] options) { return selectedIndex; }
        public static int IntPopup(string label, int selectedValue, string[] displayedOptions, int[] optionValues, params GUILayoutOption[] options) { return selectedValue; }
        public static Enum EnumPopup(GUIContent label, Enum selected, params GUILayoutOption[] options) { return selected; }
        public static UnityEngine.Object ObjectField(string label, UnityEngine.Object obj, Type objType, bool allowSceneObjects, params GUILayoutOption[] options) { return obj; }
    }
}
#endif
