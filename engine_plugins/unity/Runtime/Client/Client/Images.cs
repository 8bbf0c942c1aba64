// Helpers for Image messages: detect encodings, raw RGBA8 rows, file extensions. Hand-written.

using System;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>Builds and describes <see cref="Image"/> messages.</summary>
    public static class Images
    {
        /// <summary>
        /// An input image from encoded bytes; PNG, JPEG and WEBP are recognised by their signature
        /// (anything else is sent as unspecified, which the daemon reads as PNG).
        /// </summary>
        public static Image FromEncoded(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            return new Image { Data = data, Encoding = Detect(data) };
        }

        /// <summary>
        /// An input image from tightly packed 8-bit RGBA pixels. <paramref name="bottomUp"/>: the
        /// rows start at the bottom, as in Unity's <c>Texture2D.GetRawTextureData</c>/<c>GetPixels32</c>;
        /// they are flipped, since the wire format is top row first.
        /// </summary>
        public static Image FromRgba32(byte[] rgba, int width, int height, bool bottomUp)
        {
            if (rgba == null) throw new ArgumentNullException("rgba");
            if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException("width", "width and height must be positive");
            long expected = (long)width * height * 4;
            if (rgba.LongLength != expected)
                throw new ArgumentException("rgba has " + rgba.LongLength + " bytes; " + width + "x" + height
                    + " RGBA8 needs " + expected, "rgba");
            byte[] data = bottomUp ? FlipRows(rgba, width * 4, height) : rgba;
            return new Image { Data = data, Encoding = Encoding.RawRgba8, Width = (uint)width, Height = (uint)height };
        }

        /// <summary>Rows reversed (top-down to bottom-up and back).</summary>
        public static byte[] FlipRows(byte[] pixels, int stride, int height)
        {
            var flipped = new byte[pixels.Length];
            for (int y = 0; y < height; y++)
                Buffer.BlockCopy(pixels, y * stride, flipped, (height - 1 - y) * stride, stride);
            return flipped;
        }

        /// <summary>The encoding of <paramref name="data"/> from its signature.</summary>
        public static Encoding Detect(byte[] data)
        {
            if (data.Length >= 8 && data[0] == 0x89 && data[1] == (byte)'P' && data[2] == (byte)'N' && data[3] == (byte)'G')
                return Encoding.Png;
            if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
                return Encoding.Jpeg;
            if (data.Length >= 12 && data[0] == (byte)'R' && data[1] == (byte)'I' && data[2] == (byte)'F'
                && data[3] == (byte)'F' && data[8] == (byte)'W' && data[9] == (byte)'E' && data[10] == (byte)'B'
                && data[11] == (byte)'P')
                return Encoding.Webp;
            return Encoding.Unspecified;
        }

        /// <summary>The file extension for an encoding, with the dot: <c>.png</c>, <c>.jpg</c>, <c>.webp</c>, <c>.rgba</c>.</summary>
        public static string Extension(Encoding encoding)
        {
            switch (encoding)
            {
                case Encoding.Jpeg: return ".jpg";
                case Encoding.Webp: return ".webp";
                case Encoding.RawRgba8: return ".rgba";
                default: return ".png";
            }
        }
    }
}
