// Hand-written proto3 wire reader for the generated PixelKiln messages (no dependencies).
// Kept to the C# subset that Debian's mono 6.8 mcs compiles; runs on Unity (Mono, IL2CPP)
// and Godot .NET: no reflection, no unsafe code, no Span.

using System;

namespace PixelKiln.Protobuf
{
    /// <summary>
    /// Reads protobuf wire format from a byte array. Embedded messages are read in place by
    /// narrowing the readable range (<see cref="PushLimit"/>), so only bytes and strings copy.
    /// </summary>
    public sealed class ProtoReader
    {
        /// <summary>Embedded messages nest at most this deep (as in Google's runtimes).</summary>
        public const int RecursionLimit = 100;

        private readonly byte[] buffer;
        private int position;
        private int limit;
        private int depth;

        public ProtoReader(byte[] buffer) : this(buffer, 0, buffer == null ? 0 : buffer.Length)
        {
        }

        public ProtoReader(byte[] buffer, int offset, int length)
        {
            if (buffer == null) throw new ArgumentNullException("buffer");
            if (offset < 0 || length < 0 || offset + length > buffer.Length)
                throw new ArgumentOutOfRangeException("length");
            this.buffer = buffer;
            position = offset;
            limit = offset + length;
        }

        public int Position { get { return position; } }

        /// <summary>True when the current message (or the whole input) has been read.</summary>
        public bool IsAtEnd { get { return position >= limit; } }

        /// <summary>The next tag, or 0 at the end of the current message.</summary>
        public uint ReadTag()
        {
            if (position >= limit) return 0;
            ulong tag = ReadVarint64();
            if (tag > uint.MaxValue || (tag >> 3) == 0) throw new ProtoException("invalid tag " + tag);
            return (uint)tag;
        }

        public ulong ReadVarint64()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (position >= limit) throw new ProtoException("truncated varint");
                byte b = buffer[position++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return result;
            }
            throw new ProtoException("malformed varint");
        }

        public uint ReadVarint32() { return (uint)ReadVarint64(); }

        public int ReadInt32() { return (int)ReadVarint64(); }

        public long ReadInt64() { return (long)ReadVarint64(); }

        public uint ReadUInt32() { return (uint)ReadVarint64(); }

        public ulong ReadUInt64() { return ReadVarint64(); }

        public int ReadSInt32()
        {
            uint n = (uint)ReadVarint64();
            return (int)(n >> 1) ^ -(int)(n & 1);
        }

        public long ReadSInt64()
        {
            ulong n = ReadVarint64();
            return (long)(n >> 1) ^ -(long)(n & 1);
        }

        public bool ReadBool() { return ReadVarint64() != 0; }

        /// <summary>Enum values are int32 on the wire; unknown values are returned as they are.</summary>
        public int ReadEnum() { return (int)ReadVarint64(); }

        public uint ReadFixed32()
        {
            if (limit - position < 4) throw new ProtoException("truncated fixed32");
            uint value = buffer[position]
                | ((uint)buffer[position + 1] << 8)
                | ((uint)buffer[position + 2] << 16)
                | ((uint)buffer[position + 3] << 24);
            position += 4;
            return value;
        }

        public ulong ReadFixed64()
        {
            ulong low = ReadFixed32();
            ulong high = ReadFixed32();
            return low | (high << 32);
        }

        public int ReadSFixed32() { return (int)ReadFixed32(); }

        public long ReadSFixed64() { return (long)ReadFixed64(); }

        public float ReadFloat()
        {
            FloatBits bits = new FloatBits();
            bits.Bits = ReadFixed32();
            return bits.Float;
        }

        public double ReadDouble() { return BitConverter.Int64BitsToDouble((long)ReadFixed64()); }

        /// <summary>Reads a length prefix and checks that the payload is there.</summary>
        public int ReadLength()
        {
            ulong length = ReadVarint64();
            if (length > (ulong)(limit - position)) throw new ProtoException("truncated length-delimited field");
            return (int)length;
        }

        public string ReadString()
        {
            int length = ReadLength();
            string value = System.Text.Encoding.UTF8.GetString(buffer, position, length);
            position += length;
            return value;
        }

        public byte[] ReadBytes()
        {
            int length = ReadLength();
            if (length == 0) return ProtoMessage.EmptyBytes;
            byte[] value = new byte[length];
            System.Buffer.BlockCopy(buffer, position, value, 0, length);
            position += length;
            return value;
        }

        /// <summary>Reads an embedded message (length prefix, then fields) into <paramref name="message"/>.</summary>
        public void ReadMessage(IProtoMessage message)
        {
            int length = ReadLength();
            if (++depth > RecursionLimit) throw new ProtoException("message nested too deeply");
            int oldLimit = PushLimit(length);
            message.MergeFrom(this);
            PopLimit(oldLimit);
            depth--;
        }

        /// <summary>Narrows reading to the next <paramref name="length"/> bytes; returns the old limit.</summary>
        public int PushLimit(int length)
        {
            if (length < 0 || length > limit - position) throw new ProtoException("truncated message");
            int oldLimit = limit;
            limit = position + length;
            return oldLimit;
        }

        /// <summary>Restores the limit returned by <see cref="PushLimit"/>; the range must be consumed.</summary>
        public void PopLimit(int oldLimit)
        {
            if (position != limit) throw new ProtoException("message ended inside a field");
            limit = oldLimit;
        }

        /// <summary>Skips the value of an unknown field (any wire type, groups included).</summary>
        public void SkipField(uint tag)
        {
            switch (tag & 7)
            {
                case 0:
                    ReadVarint64();
                    break;
                case 1:
                    Skip(8);
                    break;
                case 2:
                    Skip(ReadLength());
                    break;
                case 3:
                    SkipGroup(tag >> 3);
                    break;
                case 5:
                    Skip(4);
                    break;
                default:
                    throw new ProtoException("invalid wire type " + (tag & 7));
            }
        }

        private void Skip(int count)
        {
            if (limit - position < count) throw new ProtoException("truncated field");
            position += count;
        }

        private void SkipGroup(uint fieldNumber)
        {
            if (++depth > RecursionLimit) throw new ProtoException("group nested too deeply");
            while (true)
            {
                uint tag = ReadTag();
                if (tag == 0) throw new ProtoException("unterminated group");
                if ((tag & 7) == 4)
                {
                    if ((tag >> 3) != fieldNumber) throw new ProtoException("mismatched end group");
                    break;
                }
                SkipField(tag);
            }
            depth--;
        }
    }
}
