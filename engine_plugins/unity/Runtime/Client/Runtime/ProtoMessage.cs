// Hand-written support types for the generated PixelKiln messages (no dependencies).

using System;

namespace PixelKiln.Protobuf
{
    /// <summary>What every generated message implements.</summary>
    public interface IProtoMessage
    {
        /// <summary>Encoded size in bytes (embedded messages included).</summary>
        int CalculateSize();

        /// <summary>Writes the fields in field-number order; call <see cref="CalculateSize"/> first for the buffer.</summary>
        void WriteTo(ProtoWriter output);

        /// <summary>Reads fields until the end of the reader's current range; unknown fields are skipped.</summary>
        void MergeFrom(ProtoReader input);
    }

    /// <summary>Creates and parses one message type: <c>Image.Parser.ParseFrom(bytes)</c>.</summary>
    public sealed class MessageParser<T> where T : class, IProtoMessage
    {
        private readonly Func<T> factory;

        public MessageParser(Func<T> factory)
        {
            this.factory = factory;
        }

        public T ParseFrom(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            return ParseFrom(data, 0, data.Length);
        }

        public T ParseFrom(byte[] data, int offset, int length)
        {
            T message = factory();
            message.MergeFrom(new ProtoReader(data, offset, length));
            return message;
        }

        public T ParseFrom(ArraySegment<byte> data)
        {
            return ParseFrom(data.Array, data.Offset, data.Count);
        }
    }

    /// <summary>Helpers shared by the generated classes.</summary>
    public static class ProtoMessage
    {
        /// <summary>The value of unset bytes fields (never written to).</summary>
        public static readonly byte[] EmptyBytes = new byte[0];

        public static byte[] ToByteArray(IProtoMessage message)
        {
            byte[] buffer = new byte[message.CalculateSize()];
            ProtoWriter output = new ProtoWriter(buffer);
            message.WriteTo(output);
            if (output.Position != buffer.Length) throw new ProtoException("size mismatch while writing");
            return buffer;
        }

        public static void MergeFrom(IProtoMessage message, byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            message.MergeFrom(new ProtoReader(data));
        }
    }

    /// <summary>Malformed protobuf input (truncated, bad tag, too deep) or a writer misuse.</summary>
    public sealed class ProtoException : Exception
    {
        public ProtoException(string message) : base(message)
        {
        }
    }
}
