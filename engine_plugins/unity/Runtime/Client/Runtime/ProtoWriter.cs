// Hand-written proto3 wire writer for the generated PixelKiln messages (no dependencies).
// Kept to the C# subset that Debian's mono 6.8 mcs compiles; runs on Unity (Mono, IL2CPP)
// and Godot .NET: no reflection, no unsafe code, no Span.

using System;
using System.Runtime.InteropServices;

namespace PixelKiln.Protobuf
{
    /// <summary>Reinterprets a float's bits without unsafe code or allocation.</summary>
    [StructLayout(LayoutKind.Explicit)]
    internal struct FloatBits
    {
        [FieldOffset(0)] public float Float;
        [FieldOffset(0)] public uint Bits;
    }

    /// <summary>
    /// Writes protobuf wire format into a byte array of the exact size. Generated messages call
    /// <c>CalculateSize()</c> first, allocate, then <c>WriteTo(writer)</c>.
    /// </summary>
    public sealed class ProtoWriter
    {
        private readonly byte[] buffer;
        private int position;

        public ProtoWriter(byte[] buffer) : this(buffer, 0)
        {
        }

        public ProtoWriter(byte[] buffer, int offset)
        {
            if (buffer == null) throw new ArgumentNullException("buffer");
            this.buffer = buffer;
            position = offset;
        }

        /// <summary>The next byte to be written.</summary>
        public int Position { get { return position; } }

        public byte[] Buffer { get { return buffer; } }

        // ---- sizes ----------------------------------------------------------------------

        public static int ComputeVarint32Size(uint value)
        {
            if ((value & (0xffffffffU << 7)) == 0) return 1;
            if ((value & (0xffffffffU << 14)) == 0) return 2;
            if ((value & (0xffffffffU << 21)) == 0) return 3;
            if ((value & (0xffffffffU << 28)) == 0) return 4;
            return 5;
        }

        public static int ComputeVarint64Size(ulong value)
        {
            int size = 1;
            while (value >= 0x80UL)
            {
                value >>= 7;
                size++;
            }
            return size;
        }

        /// <summary>Negative int32 values take ten bytes (sign-extended to 64 bits).</summary>
        public static int ComputeInt32Size(int value)
        {
            return value >= 0 ? ComputeVarint32Size((uint)value) : 10;
        }

        public static int ComputeInt64Size(long value) { return ComputeVarint64Size((ulong)value); }

        public static int ComputeUInt32Size(uint value) { return ComputeVarint32Size(value); }

        public static int ComputeUInt64Size(ulong value) { return ComputeVarint64Size(value); }

        public static int ComputeSInt32Size(int value) { return ComputeVarint32Size(EncodeZigZag32(value)); }

        public static int ComputeSInt64Size(long value) { return ComputeVarint64Size(EncodeZigZag64(value)); }

        public static int ComputeEnumSize(int value) { return ComputeInt32Size(value); }

        public static int ComputeLengthSize(int length) { return ComputeVarint32Size((uint)length); }

        /// <summary>Size of a string field's payload including its length prefix.</summary>
        public static int ComputeStringSize(string value)
        {
            int length = System.Text.Encoding.UTF8.GetByteCount(value);
            return ComputeLengthSize(length) + length;
        }

        /// <summary>Size of a bytes field's payload including its length prefix.</summary>
        public static int ComputeBytesSize(byte[] value)
        {
            return ComputeLengthSize(value.Length) + value.Length;
        }

        /// <summary>Size of an embedded message including its length prefix; null is empty.</summary>
        public static int ComputeMessageSize(IProtoMessage value)
        {
            int length = value == null ? 0 : value.CalculateSize();
            return ComputeLengthSize(length) + length;
        }

        public static uint EncodeZigZag32(int n) { return (uint)((n << 1) ^ (n >> 31)); }

        public static ulong EncodeZigZag64(long n) { return (ulong)((n << 1) ^ (n >> 63)); }

        /// <summary>The IEEE bits of a float; proto3 writes a float field unless all bits are 0.</summary>
        public static uint FloatToBits(float value)
        {
            FloatBits bits = new FloatBits();
            bits.Float = value;
            return bits.Bits;
        }

        // ---- writing --------------------------------------------------------------------

        /// <summary>Writes a precomputed tag: (field number &lt;&lt; 3) | wire type.</summary>
        public void WriteTag(uint tag) { WriteVarint32(tag); }

        public void WriteVarint32(uint value)
        {
            while (value >= 0x80U)
            {
                buffer[position++] = (byte)(value | 0x80U);
                value >>= 7;
            }
            buffer[position++] = (byte)value;
        }

        public void WriteVarint64(ulong value)
        {
            while (value >= 0x80UL)
            {
                buffer[position++] = (byte)(value | 0x80UL);
                value >>= 7;
            }
            buffer[position++] = (byte)value;
        }

        public void WriteInt32(int value)
        {
            if (value >= 0) WriteVarint32((uint)value);
            else WriteVarint64((ulong)(long)value);
        }

        public void WriteInt64(long value) { WriteVarint64((ulong)value); }

        public void WriteUInt32(uint value) { WriteVarint32(value); }

        public void WriteUInt64(ulong value) { WriteVarint64(value); }

        public void WriteSInt32(int value) { WriteVarint32(EncodeZigZag32(value)); }

        public void WriteSInt64(long value) { WriteVarint64(EncodeZigZag64(value)); }

        public void WriteBool(bool value) { buffer[position++] = value ? (byte)1 : (byte)0; }

        public void WriteEnum(int value) { WriteInt32(value); }

        public void WriteFixed32(uint value)
        {
            buffer[position++] = (byte)value;
            buffer[position++] = (byte)(value >> 8);
            buffer[position++] = (byte)(value >> 16);
            buffer[position++] = (byte)(value >> 24);
        }

        public void WriteFixed64(ulong value)
        {
            WriteFixed32((uint)value);
            WriteFixed32((uint)(value >> 32));
        }

        public void WriteSFixed32(int value) { WriteFixed32((uint)value); }

        public void WriteSFixed64(long value) { WriteFixed64((ulong)value); }

        public void WriteFloat(float value) { WriteFixed32(FloatToBits(value)); }

        public void WriteDouble(double value) { WriteFixed64((ulong)BitConverter.DoubleToInt64Bits(value)); }

        public void WriteLength(int length) { WriteVarint32((uint)length); }

        public void WriteString(string value)
        {
            int length = System.Text.Encoding.UTF8.GetByteCount(value);
            WriteLength(length);
            if (position + length > buffer.Length) throw new ProtoException("buffer too small");
            position += System.Text.Encoding.UTF8.GetBytes(value, 0, value.Length, buffer, position);
        }

        public void WriteBytes(byte[] value)
        {
            WriteLength(value.Length);
            System.Buffer.BlockCopy(value, 0, buffer, position, value.Length);
            position += value.Length;
        }

        /// <summary>Writes an embedded message with its length prefix; null is written empty.</summary>
        public void WriteMessage(IProtoMessage value)
        {
            if (value == null)
            {
                WriteLength(0);
                return;
            }
            WriteLength(value.CalculateSize());
            value.WriteTo(this);
        }
    }
}
