using System;
using PixelKiln.Client;
using UnityEditor;
using UnityEngine;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Grabs live-mode inputs on the main thread: the scene view camera rendered into a
    /// RenderTexture, or any texture blitted into one (so non-readable and compressed textures
    /// work), read back and encoded as JPEG.
    /// </summary>
    internal sealed class LiveCapture : IDisposable
    {
        private Texture2D readback;

        /// <summary>The scene view camera's view as JPEG, or null when there is no scene view.</summary>
        public byte[] CaptureSceneView(int width, int height)
        {
            SceneView view = SceneView.lastActiveSceneView;
            if (view == null || view.camera == null) return null;
            Camera camera = view.camera;
            RenderTexture target = RenderTexture.GetTemporary(width, height, 24);
            RenderTexture previous = camera.targetTexture;
            try
            {
                camera.targetTexture = target;
                camera.Render();
            }
            finally
            {
                camera.targetTexture = previous;
            }
            try
            {
                return ReadBack(target, width, height);
            }
            finally
            {
                RenderTexture.ReleaseTemporary(target);
            }
        }

        /// <summary><paramref name="source"/> scaled to width x height, as JPEG.</summary>
        public byte[] CaptureTexture(Texture source, int width, int height)
        {
            if (source == null) return null;
            RenderTexture target = RenderTexture.GetTemporary(width, height, 0);
            try
            {
                Graphics.Blit(source, target);
                return ReadBack(target, width, height);
            }
            finally
            {
                RenderTexture.ReleaseTemporary(target);
            }
        }

        private byte[] ReadBack(RenderTexture source, int width, int height)
        {
            if (readback == null || readback.width != width || readback.height != height)
            {
                Kiln.DestroyTexture(readback);
                readback = new Texture2D(width, height, TextureFormat.RGB24, false);
                readback.hideFlags = HideFlags.HideAndDontSave;
            }
            RenderTexture previous = RenderTexture.active;
            RenderTexture.active = source;
            try
            {
                readback.ReadPixels(new Rect(0, 0, width, height), 0, 0);
                readback.Apply(false);
            }
            finally
            {
                RenderTexture.active = previous;
            }
            return ImageConversion.EncodeToJPG(readback, 90);
        }

        public void Dispose()
        {
            Kiln.DestroyTexture(readback);
            readback = null;
        }
    }

    /// <summary>Turns client errors into one clear sentence for the window.</summary>
    internal static class ErrorText
    {
        public static string Describe(Exception error, string url)
        {
            var aggregate = error as AggregateException;
            if (aggregate != null && aggregate.InnerExceptions.Count == 1) error = aggregate.InnerExceptions[0];
            if (error is OperationCanceledException) return "Cancelled.";
            var connection = error as PixelKilnConnectionException;
            if (connection != null)
                return "Daemon not reachable at " + url + ": " + connection.Detail
                    + "\nStart it with the button above (or run `pixelkiln serve` yourself), and check the host and WebSocket port.";
            var kiln = error as PixelKilnException;
            if (kiln != null)
            {
                switch (kiln.Code)
                {
                    case StatusCodes.InvalidArgument:
                        return "Invalid setting: " + kiln.Detail;
                    case StatusCodes.NotFound:
                        return "Not found: " + kiln.Detail + " (pick a model from the list, or load it first)";
                    case StatusCodes.ResourceExhausted:
                        if (kiln.Detail.IndexOf("message limit", StringComparison.Ordinal) >= 0)
                            return "Too large to send: " + kiln.Detail;
                        return "The daemon is out of room (queue full or out of GPU memory): " + kiln.Detail;
                    case StatusCodes.Cancelled:
                        return "Cancelled on the daemon: " + kiln.Detail;
                    case StatusCodes.DeadlineExceeded:
                        return "Timed out: " + kiln.Detail;
                    case StatusCodes.Unavailable:
                        return "The daemon is shutting down or unavailable: " + kiln.Detail;
                    case StatusCodes.Internal:
                        return "The daemon hit an internal error (its log has the details): " + kiln.Detail;
                    case StatusCodes.Unauthenticated:
                        return "The daemon needs a token: " + kiln.Detail
                            + "\nSet Token under Studio network (kept in EditorPrefs), or PIXELKILN_TOKEN.";
                    case StatusCodes.PermissionDenied:
                        return "Not allowed: " + kiln.Detail;
                    default:
                        return kiln.CodeName + ": " + kiln.Detail;
                }
            }
            return error.GetType().Name + ": " + error.Message;
        }
    }
}
