using System;
using System.Collections.Generic;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEngine;

namespace PixelKiln.Unity
{
    /// <summary>
    /// The options of one <see cref="Kiln"/> generation; every field has a sensible default
    /// (the model's native size, steps and guidance; a seed picked by the daemon; PNG results).
    /// </summary>
    /// <example>
    /// <code>
    /// var options = new KilnOptions { Width = 512, Height = 512, Seed = 7, Tiling = Tiling.Xy };
    /// options.Maps.Add(MapKind.Normal);
    /// options.OnProgress = f => Debug.Log("progress " + f);
    /// </code>
    /// </example>
    public sealed class KilnOptions
    {
        /// <summary>Creates options with the defaults.</summary>
        public KilnOptions()
        {
            Seed = -1;
            Count = 1;
            PreviewEveryNSteps = 1;
            Maps = new List<MapKind>();
        }

        /// <summary>Model name (<c>Kiln.Client.ListModelsAsync</c>); empty: the daemon's default.</summary>
        public string Model { get; set; }

        /// <summary>What to avoid.</summary>
        public string NegativePrompt { get; set; }

        /// <summary>Width in pixels, a multiple of 8 (64..4096); 0: the model's native size.</summary>
        public int Width { get; set; }

        /// <summary>Height in pixels, a multiple of 8 (64..4096); 0: the model's native size.</summary>
        public int Height { get; set; }

        /// <summary>Denoising steps; 0: the model's default.</summary>
        public int Steps { get; set; }

        /// <summary>Seed of the first image; negative: the daemon picks one (reported in the result).</summary>
        public long Seed { get; set; }

        /// <summary>Guidance scale; null: the model's default.</summary>
        public float? Guidance { get; set; }

        /// <summary>Seamless tiling axes; tiling textures are decoded with wrap mode Repeat.</summary>
        public Tiling Tiling { get; set; }

        /// <summary>A sprite on a transparent background (RGBA).</summary>
        public bool Transparent { get; set; }

        /// <summary>Derived maps to generate next to each image (normal, height, roughness, AO).</summary>
        public List<MapKind> Maps { get; private set; }

        /// <summary>Images to generate (1..8); image i uses seed + i.</summary>
        public int Count { get; set; }

        /// <summary>Pack the images into one atlas (needs <see cref="Count"/> of 2 or more).</summary>
        public bool Atlas { get; set; }

        /// <summary>Send a preview every N steps (0: none).</summary>
        public int PreviewEveryNSteps { get; set; }

        /// <summary>Called on the main thread with 0..1 after each step.</summary>
        public Action<float> OnProgress { get; set; }

        /// <summary>
        /// Called on the main thread with each step preview (one texture reused across calls;
        /// it is destroyed when the generation ends, so copy it if you keep it).
        /// </summary>
        public Action<Texture2D> OnPreview { get; set; }

        /// <summary>The protobuf request these options describe.</summary>
        public GenerateRequest ToRequest(string prompt)
        {
            var request = new GenerateRequest
            {
                Prompt = prompt ?? "",
                Model = Model ?? "",
                NegativePrompt = NegativePrompt ?? "",
                Width = (uint)Math.Max(0, Width),
                Height = (uint)Math.Max(0, Height),
                Steps = (uint)Math.Max(0, Steps),
                NumImages = (uint)Math.Max(1, Count),
                Tiling = Tiling,
                Background = Transparent ? Background.Transparent : Background.Opaque,
                Atlas = Atlas,
                OutputEncoding = Encoding.Png,
            };
            if (Seed >= 0) request.Seed = (ulong)Seed;
            if (Guidance.HasValue) request.GuidanceScale = Guidance.Value;
            request.Maps.AddRange(Maps);
            if (PreviewEveryNSteps > 0) request.Preview = new PreviewSettings { EveryNSteps = (uint)PreviewEveryNSteps };
            return request;
        }
    }

    /// <summary>The textures of one generation (destroy them with <see cref="Dispose"/> when done).</summary>
    public sealed class KilnResult : IDisposable
    {
        internal KilnResult(Result raw, Texture2D[] textures, Dictionary<MapKind, Texture2D>[] maps, Texture2D atlas)
        {
            Raw = raw;
            Textures = textures;
            Maps = maps;
            Atlas = atlas;
        }

        /// <summary>The daemon's answer: image bytes, seeds, recipe, timings, seam reports.</summary>
        public Result Raw { get; private set; }

        /// <summary>One texture per generated image.</summary>
        public Texture2D[] Textures { get; private set; }

        /// <summary>The first texture.</summary>
        public Texture2D Texture
        {
            get { return Textures.Length > 0 ? Textures[0] : null; }
        }

        /// <summary>Per image: its derived maps by kind (normal and data maps are linear).</summary>
        public Dictionary<MapKind, Texture2D>[] Maps { get; private set; }

        /// <summary>The atlas, when requested.</summary>
        public Texture2D Atlas { get; private set; }

        /// <summary>The seed of the first image (to reproduce it).</summary>
        public ulong Seed
        {
            get { return Raw.Images.Count > 0 ? Raw.Images[0].Seed : 0; }
        }

        /// <summary>Saves every file of the result into a folder, atomically (see <see cref="ResultFiles.Save"/>).</summary>
        public IList<SavedFile> Save(string folder, string name)
        {
            return ResultFiles.Save(Raw, folder, name);
        }

        /// <summary>Destroys the textures.</summary>
        public void Dispose()
        {
            foreach (Texture2D texture in Textures) Kiln.DestroyTexture(texture);
            foreach (Dictionary<MapKind, Texture2D> maps in Maps)
                foreach (Texture2D texture in maps.Values) Kiln.DestroyTexture(texture);
            Kiln.DestroyTexture(Atlas);
        }
    }
}
