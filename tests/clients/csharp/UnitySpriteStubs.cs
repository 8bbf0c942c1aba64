// COMPILE-ONLY STAND-IN for the parts of the com.unity.2d.sprite package's editor assembly
// (Unity.2D.Sprite.Editor.dll) that engine_plugins/unity/Editor/SpriteSheet.cs uses. NOT SHIPPED,
// NOT Unity: no member does anything. Signatures follow the package's API reference
// (com.unity.2d.sprite 1.0, Unity 2021.3 and later); built by tests/clients/test_csharp_client.py
// against the UnityEngine/UnityEditor stand-ins of UnityStubs.cs.

#pragma warning disable 67, 649, 1591

namespace UnityEditor
{
    using System;
    using UnityEngine;

    [Serializable]
    public class SpriteRect
    {
        public string name { get; set; }
        public Vector2 pivot { get; set; }
        public SpriteAlignment alignment { get; set; }
        public Rect rect { get; set; }
        public GUID spriteID { get; set; }
    }

    [Serializable]
    public class SpriteNameFileIdPair
    {
        public SpriteNameFileIdPair() { }
        public SpriteNameFileIdPair(string name, GUID fileId) { }
        public string name { get; set; }
    }
}

namespace UnityEditor.U2D.Sprites
{
    using System;
    using System.Collections.Generic;
    using UnityEngine;

    public interface ISpriteEditorDataProvider
    {
        SpriteImportMode spriteImportMode { get; }
        float pixelsPerUnit { get; }
        UnityEngine.Object targetObject { get; }
        SpriteRect[] GetSpriteRects();
        void SetSpriteRects(SpriteRect[] spriteRects);
        void Apply();
        void InitSpriteEditorDataProvider();
        T GetDataProvider<T>() where T : class;
        bool HasDataProvider(Type type);
    }

    public interface ISpriteNameFileIdDataProvider
    {
        IEnumerable<SpriteNameFileIdPair> GetNameFileIdPairs();
        void SetNameFileIdPairs(IEnumerable<SpriteNameFileIdPair> nameFileIdPairs);
    }

    public class SpriteDataProviderFactories
    {
        public void Init() { }
        public ISpriteEditorDataProvider GetSpriteEditorDataProviderFromObject(UnityEngine.Object obj) { return null; }
    }
}
