using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEngine;

namespace PixelKiln.Unity
{
    /// <summary>
    /// PixelKiln for game and editor scripts, no MonoBehaviour needed: generate textures from a
    /// prompt with async/await or in a coroutine. Wraps one shared <see cref="PixelKilnClient"/>
    /// (the WebSocket carrier; <see cref="Url"/>). Call it from the main thread: textures are
    /// created there, and callbacks come back there.
    /// </summary>
    /// <remarks>
    /// Named <c>Kiln</c> rather than <c>PixelKiln</c> because <c>PixelKiln</c> is the namespace
    /// (a class of that name would be shadowed by it in user code).
    /// </remarks>
    /// <example>
    /// <code>
    /// // async/await (Unity 2021.3+):
    /// Texture2D stone = await Kiln.GenerateTextureAsync("mossy cobblestone",
    ///     new KilnOptions { Width = 512, Height = 512, Tiling = Tiling.Xy });
    /// GetComponent&lt;Renderer&gt;().material.mainTexture = stone;
    ///
    /// // in a coroutine:
    /// KilnRequest request = Kiln.Generate("gold coin sprite", new KilnOptions { Transparent = true });
    /// yield return request;
    /// if (request.Error != null) Debug.LogError(request.Error.Message);
    /// else spriteRenderer.sprite = Sprite.Create(request.Texture,
    ///     new Rect(0, 0, request.Texture.width, request.Texture.height), new Vector2(0.5f, 0.5f));
    /// </code>
    /// </example>
    public static class Kiln
    {
        private static readonly object gate = new object();
        private static PixelKilnClient client;
        private static string url = PixelKilnClientOptions.DefaultUrl;

        /// <summary>The daemon's WebSocket endpoint (default <c>ws://127.0.0.1:50052/v1</c>); changing it reconnects.</summary>
        public static string Url
        {
            get { return url; }
            set
            {
                lock (gate)
                {
                    if (value == url) return;
                    url = value;
                    if (client != null) client.Dispose();
                    client = null;
                }
            }
        }

        /// <summary>
        /// The shared client (created on first use, on the calling thread's synchronization
        /// context: use it from the main thread). Use it directly for models, status and live sessions.
        /// </summary>
        public static PixelKilnClient Client
        {
            get
            {
                lock (gate)
                {
                    if (client == null) client = new PixelKilnClient(url);
                    return client;
                }
            }
        }

        /// <summary>
        /// Closes the shared client; the next use opens a new one. Called for you before every
        /// assembly reload and when the editor quits (<c>KilnLifetime</c> in the editor
        /// assembly), and when a player quits: no socket or receive thread outlives its domain.
        /// </summary>
        public static void Shutdown()
        {
            lock (gate)
            {
                if (client != null) client.Dispose();
                client = null;
            }
        }

        [RuntimeInitializeOnLoadMethod(RuntimeInitializeLoadType.SubsystemRegistration)]
        private static void ShutdownOnQuit()
        {
            Application.quitting -= Shutdown;   // once, also with domain reload off in play mode
            Application.quitting += Shutdown;
        }

        /// <summary>
        /// Generates and decodes every image, map and atlas of one request.
        /// Cancel with <paramref name="cancellationToken"/> (the daemon stops at the next step).
        /// </summary>
        /// <exception cref="PixelKilnException">The daemon refused or failed the request (the message names the field).</exception>
        /// <exception cref="PixelKilnConnectionException">The daemon is not running or not reachable at <see cref="Url"/>.</exception>
        public static async Task<KilnResult> GenerateAsync(string prompt, KilnOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            options = options ?? new KilnOptions();
            GenerateRequest request = options.ToRequest(prompt);
            Texture2D preview = null;
            var events = new GenerateHandlers();
            Action<float> onProgress = options.OnProgress;
            Action<Texture2D> onPreview = options.OnPreview;
            if (onProgress != null)
                events.Progress = p => onProgress(p.Total == 0 ? 0f : (float)p.Step / p.Total);
            if (onPreview != null)
                events.Preview = p =>
                {
                    if (p.Images.Count == 0) return;
                    preview = Decode(p.Images[0], false, Tiling.None, preview);
                    onPreview(preview);
                };
            try
            {
                Result result = await Client.GenerateAsync(request, events, cancellationToken);
                return ToTextures(result, options.Tiling);
            }
            finally
            {
                DestroyTexture(preview);
            }
        }

        /// <summary>Generates one texture (the first image of the request).</summary>
        public static async Task<Texture2D> GenerateTextureAsync(string prompt, KilnOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            KilnResult result = await GenerateAsync(prompt, options, cancellationToken);
            Texture2D first = result.Texture;
            foreach (Texture2D other in result.Textures)
                if (other != first) DestroyTexture(other);
            foreach (Dictionary<MapKind, Texture2D> maps in result.Maps)
                foreach (Texture2D map in maps.Values) DestroyTexture(map);
            DestroyTexture(result.Atlas);
            return first;
        }

        /// <summary>Starts a generation for a coroutine: <c>yield return Kiln.Generate(...)</c>.</summary>
        public static KilnRequest Generate(string prompt, KilnOptions options = null)
        {
            var cancellation = new CancellationTokenSource();
            return new KilnRequest(GenerateAsync(prompt, options, cancellation.Token), cancellation);
        }

        /// <summary>
        /// Decodes an <see cref="Image"/> (PNG, JPEG or raw RGBA8) into a texture. Reuses
        /// <paramref name="reuse"/> when given. <paramref name="linear"/>: data maps (normal,
        /// height, roughness, AO) are not colours. Unity cannot decode WEBP: ask for PNG.
        /// </summary>
        public static Texture2D Decode(Image image, bool linear, Tiling tiling, Texture2D reuse = null)
        {
            if (image == null || image.Data.Length == 0) throw new ArgumentException("the image is empty", "image");
            Texture2D texture;
            if (image.Encoding == Encoding.RawRgba8)
            {
                int width = (int)image.Width;
                int height = (int)image.Height;
                texture = reuse != null && reuse.width == width && reuse.height == height
                    ? reuse
                    : new Texture2D(width, height, TextureFormat.RGBA32, false, linear);
                // Unity's rows go bottom-up; the wire's top-down.
                texture.LoadRawTextureData(Images.FlipRows(image.Data, width * 4, height));
                texture.Apply();
            }
            else
            {
                Encoding encoding = image.Encoding == Encoding.Unspecified ? Images.Detect(image.Data) : image.Encoding;
                if (encoding == Encoding.Webp)
                    throw new NotSupportedException("Unity cannot decode WEBP images; request ENCODING_PNG or ENCODING_JPEG");
                texture = reuse ?? new Texture2D(2, 2, TextureFormat.RGBA32, true, linear);
                if (!ImageConversion.LoadImage(texture, image.Data, false))
                    throw new ArgumentException("Unity could not decode the " + encoding + " image", "image");
            }
            texture.wrapModeU = tiling == Tiling.X || tiling == Tiling.Xy ? TextureWrapMode.Repeat : TextureWrapMode.Clamp;
            texture.wrapModeV = tiling == Tiling.Y || tiling == Tiling.Xy ? TextureWrapMode.Repeat : TextureWrapMode.Clamp;
            return texture;
        }

        /// <summary>Destroys a texture made by this API (null is ignored; works in edit and play mode).</summary>
        public static void DestroyTexture(Texture2D texture)
        {
            if (texture == null) return;
            if (Application.isPlaying) UnityEngine.Object.Destroy(texture);
            else UnityEngine.Object.DestroyImmediate(texture);
        }

        private static KilnResult ToTextures(Result result, Tiling tiling)
        {
            var textures = new List<Texture2D>();
            var maps = new List<Dictionary<MapKind, Texture2D>>();
            foreach (GeneratedImage generated in result.Images)
            {
                textures.Add(Decode(generated.Image, false, tiling));
                var byKind = new Dictionary<MapKind, Texture2D>();
                foreach (DerivedMap map in generated.Maps)
                    if (map.Image != null) byKind[map.Kind] = Decode(map.Image, true, tiling);
                maps.Add(byKind);
            }
            Texture2D atlas = result.Atlas != null && result.Atlas.Image != null
                ? Decode(result.Atlas.Image, false, Tiling.None)
                : null;
            return new KilnResult(result, textures.ToArray(), maps.ToArray(), atlas);
        }
    }

    /// <summary>
    /// A generation to wait for in a coroutine (<c>yield return request;</c>); then read
    /// <see cref="Result"/>/<see cref="Texture"/> or <see cref="Error"/>.
    /// </summary>
    public sealed class KilnRequest : CustomYieldInstruction
    {
        private readonly Task<KilnResult> task;
        private readonly CancellationTokenSource cancellation;

        internal KilnRequest(Task<KilnResult> task, CancellationTokenSource cancellation)
        {
            this.task = task;
            this.cancellation = cancellation;
        }

        /// <summary>True while the generation runs.</summary>
        public override bool keepWaiting
        {
            get { return !task.IsCompleted; }
        }

        /// <summary>True when finished, failed or cancelled.</summary>
        public bool IsDone
        {
            get { return task.IsCompleted; }
        }

        /// <summary>The textures (null until done, or on failure).</summary>
        public KilnResult Result
        {
            get { return task.Status == TaskStatus.RanToCompletion ? task.Result : null; }
        }

        /// <summary>The first texture (null until done, or on failure).</summary>
        public Texture2D Texture
        {
            get { return Result == null ? null : Result.Texture; }
        }

        /// <summary>Why it failed (<see cref="PixelKilnException"/>, <see cref="OperationCanceledException"/>), or null.</summary>
        public Exception Error
        {
            get
            {
                if (task.IsCanceled) return new OperationCanceledException("the generation was cancelled");
                if (!task.IsFaulted) return null;
                Exception error = task.Exception;
                return error.InnerException ?? error;
            }
        }

        /// <summary>Cancels the generation (it stops at the next step).</summary>
        public void Cancel()
        {
            cancellation.Cancel();
        }
    }
}
