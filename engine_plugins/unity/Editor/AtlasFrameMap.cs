using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace PixelKiln.Unity.Editor
{
    /// <summary>One frame of an atlas: its name and its rectangle in pixels, origin top-left.</summary>
    internal sealed class AtlasFrame
    {
        public string Name;
        public int X;
        public int Y;
        public int Width;
        public int Height;
        /// <summary>
        /// The sprite's pivot, normalised from its bottom-left: the centre of the frame it was
        /// drawn in. (0.5, 0.5) unless the daemon trimmed it (then its source's centre, so a
        /// trimmed animation's frames line up as they were drawn).
        /// </summary>
        public float PivotX = 0.5f;
        public float PivotY = 0.5f;
    }

    /// <summary>
    /// The frame map the daemon writes beside an atlas (TexturePacker "JSON (Hash)": <c>frames</c>
    /// maps each name to its <c>frame</c> {x, y, w, h}, origin top-left; <c>meta.size</c> is the
    /// atlas size). <see cref="UnityY"/> turns a frame's top-left y into Unity's bottom-left one
    /// for sprite rectangles. Frames keep the map's order. A trimmed frame's pivot is its source's
    /// centre; rotated frames (which the daemon never writes) are refused. No Unity types:
    /// tests/clients runs it with mono.
    /// </summary>
    internal sealed class AtlasFrameMap
    {
        public int Width;
        public int Height;
        public readonly List<AtlasFrame> Frames = new List<AtlasFrame>();

        /// <summary>The bottom-left y of <paramref name="frame"/> (Unity's texture space).</summary>
        public int UnityY(AtlasFrame frame)
        {
            return Height - frame.Y - frame.Height;
        }

        /// <summary>Reads a frame map; <see cref="FormatException"/> names what is wrong.</summary>
        public static AtlasFrameMap Parse(string json)
        {
            var root = new JsonReader(json).ReadDocument() as List<KeyValuePair<string, object>>;
            if (root == null) throw new FormatException("the atlas frame map is not a JSON object");
            var map = new AtlasFrameMap();
            var size = Member(Member(root, "meta", "the map"), "size", "meta");
            map.Width = Integer(size, "w", "meta.size");
            map.Height = Integer(size, "h", "meta.size");
            if (map.Width <= 0 || map.Height <= 0)
                throw new FormatException("meta.size must be positive, got " + map.Width + "x" + map.Height);
            foreach (KeyValuePair<string, object> entry in Member(root, "frames", "the map"))
            {
                string where = "frames." + entry.Key;
                var value = entry.Value as List<KeyValuePair<string, object>>;
                if (value == null) throw new FormatException(where + " is not an object");
                if (True(value, "rotated"))
                    throw new FormatException(where + " is rotated, which PixelKiln does not import");
                var rect = Member(value, "frame", where);
                var frame = new AtlasFrame
                {
                    Name = entry.Key,
                    X = Integer(rect, "x", where + ".frame"),
                    Y = Integer(rect, "y", where + ".frame"),
                    Width = Integer(rect, "w", where + ".frame"),
                    Height = Integer(rect, "h", where + ".frame"),
                };
                if (True(value, "trimmed"))
                {
                    // Where the trimmed rectangle sat in its source (spriteSourceSize x, y) and the
                    // source's size: the pivot goes to the source's centre.
                    var placed = Member(value, "spriteSourceSize", where);
                    var source = Member(value, "sourceSize", where);
                    int sx = Integer(placed, "x", where + ".spriteSourceSize");
                    int sy = Integer(placed, "y", where + ".spriteSourceSize");
                    int sw = Integer(source, "w", where + ".sourceSize");
                    int sh = Integer(source, "h", where + ".sourceSize");
                    if (sx < 0 || sy < 0 || sx + frame.Width > sw || sy + frame.Height > sh)
                        throw new FormatException(where + ".spriteSourceSize does not fit in its " + sw + "x" + sh + " sourceSize");
                    frame.PivotX = (sw / 2f - sx) / frame.Width;
                    frame.PivotY = (sy + frame.Height - sh / 2f) / frame.Height;
                }
                if (frame.Name.Length == 0) throw new FormatException("a frame has an empty name");
                if (frame.Width <= 0 || frame.Height <= 0 || frame.X < 0 || frame.Y < 0
                    || frame.X + frame.Width > map.Width || frame.Y + frame.Height > map.Height)
                    throw new FormatException(where + ".frame (" + frame.X + ", " + frame.Y + ", " + frame.Width + "x"
                        + frame.Height + ") is not inside the " + map.Width + "x" + map.Height + " atlas");
                map.Frames.Add(frame);
            }
            if (map.Frames.Count == 0) throw new FormatException("the atlas frame map has no frames");
            return map;
        }

        private static List<KeyValuePair<string, object>> Member(List<KeyValuePair<string, object>> obj, string key, string where)
        {
            object value = Find(obj, key);
            var member = value as List<KeyValuePair<string, object>>;
            if (member == null) throw new FormatException(where + " has no object '" + key + "'");
            return member;
        }

        private static int Integer(List<KeyValuePair<string, object>> obj, string key, string where)
        {
            object value = Find(obj, key);
            if (!(value is double)) throw new FormatException(where + "." + key + " is missing or not a number");
            double number = (double)value;
            if (number != Math.Floor(number) || Math.Abs(number) > int.MaxValue)
                throw new FormatException(where + "." + key + " is not a whole number: " + number.ToString(CultureInfo.InvariantCulture));
            return (int)number;
        }

        private static bool True(List<KeyValuePair<string, object>> obj, string key)
        {
            object value = Find(obj, key);
            return value is bool && (bool)value;
        }

        private static object Find(List<KeyValuePair<string, object>> obj, string key)
        {
            foreach (KeyValuePair<string, object> pair in obj)
                if (pair.Key == key) return pair.Value;
            return null;
        }

        /// <summary>
        /// A small JSON reader (RFC 8259): objects become ordered key/value lists, arrays lists,
        /// numbers doubles. Unity's JsonUtility cannot read a map whose keys are the frame names.
        /// </summary>
        private sealed class JsonReader
        {
            private const int MaxDepth = 64;
            private readonly string text;
            private int at;
            private int depth;

            public JsonReader(string text)
            {
                this.text = text ?? "";
            }

            public object ReadDocument()
            {
                object value = ReadValue();
                SkipSpace();
                if (at != text.Length) throw Error("unexpected text after the end");
                return value;
            }

            private object ReadValue()
            {
                SkipSpace();
                if (at >= text.Length) throw Error("unexpected end");
                char c = text[at];
                if (c == '{') return ReadObject();
                if (c == '[') return ReadArray();
                if (c == '"') return ReadString();
                if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
                if (Literal("true")) return true;
                if (Literal("false")) return false;
                if (Literal("null")) return null;
                throw Error("unexpected '" + c + "'");
            }

            private List<KeyValuePair<string, object>> ReadObject()
            {
                Enter();
                at++;
                var members = new List<KeyValuePair<string, object>>();
                SkipSpace();
                if (Next('}')) return Leave(members);
                while (true)
                {
                    SkipSpace();
                    if (at >= text.Length || text[at] != '"') throw Error("expected a member name");
                    string key = ReadString();
                    SkipSpace();
                    if (!Next(':')) throw Error("expected ':'");
                    members.Add(new KeyValuePair<string, object>(key, ReadValue()));
                    SkipSpace();
                    if (Next('}')) return Leave(members);
                    if (!Next(',')) throw Error("expected ',' or '}'");
                }
            }

            private List<object> ReadArray()
            {
                Enter();
                at++;
                var items = new List<object>();
                SkipSpace();
                if (Next(']')) return Leave(items);
                while (true)
                {
                    items.Add(ReadValue());
                    SkipSpace();
                    if (Next(']')) return Leave(items);
                    if (!Next(',')) throw Error("expected ',' or ']'");
                }
            }

            private string ReadString()
            {
                at++;
                var value = new StringBuilder();
                while (true)
                {
                    if (at >= text.Length) throw Error("unterminated string");
                    char c = text[at++];
                    if (c == '"') return value.ToString();
                    if (c < ' ') throw Error("control character in a string");
                    if (c != '\\')
                    {
                        value.Append(c);
                        continue;
                    }
                    if (at >= text.Length) throw Error("unterminated string");
                    char e = text[at++];
                    switch (e)
                    {
                        case '"': value.Append('"'); break;
                        case '\\': value.Append('\\'); break;
                        case '/': value.Append('/'); break;
                        case 'b': value.Append('\b'); break;
                        case 'f': value.Append('\f'); break;
                        case 'n': value.Append('\n'); break;
                        case 'r': value.Append('\r'); break;
                        case 't': value.Append('\t'); break;
                        case 'u':
                            int code;
                            if (at + 4 > text.Length || !int.TryParse(text.Substring(at, 4), NumberStyles.AllowHexSpecifier,
                                CultureInfo.InvariantCulture, out code))
                                throw Error("bad \\u escape");
                            value.Append((char)code);
                            at += 4;
                            break;
                        default: throw Error("bad escape \\" + e);
                    }
                }
            }

            private double ReadNumber()
            {
                int start = at;
                if (text[at] == '-') at++;
                while (at < text.Length && "0123456789.eE+-".IndexOf(text[at]) >= 0) at++;
                double number;
                if (!double.TryParse(text.Substring(start, at - start), NumberStyles.Float, CultureInfo.InvariantCulture, out number))
                    throw Error("bad number");
                return number;
            }

            private bool Literal(string word)
            {
                if (string.CompareOrdinal(text, at, word, 0, word.Length) != 0) return false;
                at += word.Length;
                return true;
            }

            private bool Next(char c)
            {
                if (at < text.Length && text[at] == c)
                {
                    at++;
                    return true;
                }
                return false;
            }

            private void SkipSpace()
            {
                while (at < text.Length && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) at++;
            }

            private void Enter()
            {
                if (++depth > MaxDepth) throw Error("nested deeper than " + MaxDepth);
            }

            private T Leave<T>(T value)
            {
                depth--;
                return value;
            }

            private FormatException Error(string what)
            {
                return new FormatException("the atlas frame map is not valid JSON: " + what + " at character " + at);
            }
        }
    }
}
