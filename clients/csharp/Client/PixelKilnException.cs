// The errors of the PixelKiln C# client. Hand-written (not generated).

using System;

namespace PixelKiln.Client
{
    /// <summary>
    /// gRPC status codes as the daemon reports them in <c>Envelope.error</c> (number and name).
    /// </summary>
    public static class StatusCodes
    {
        /// <summary>The request was cancelled (by <c>CancelAsync</c>, a token, or the daemon shutting down).</summary>
        public const int Cancelled = 1;
        /// <summary>An unknown error.</summary>
        public const int Unknown = 2;
        /// <summary>A field is out of range; the message names the field and the limit.</summary>
        public const int InvalidArgument = 3;
        /// <summary>A deadline passed (for example an idle live session).</summary>
        public const int DeadlineExceeded = 4;
        /// <summary>Unknown model, missing folder or file.</summary>
        public const int NotFound = 5;
        /// <summary>
        /// The token's scope does not allow the call (Load/Unload need 'admin'), or the daemon
        /// refused the handshake's <c>Origin</c>.
        /// </summary>
        public const int PermissionDenied = 7;
        /// <summary>Queue full, out of GPU memory, or a frame over the message limit.</summary>
        public const int ResourceExhausted = 8;
        /// <summary>A bug on the daemon (its log has the traceback).</summary>
        public const int Internal = 13;
        /// <summary>The daemon is not reachable, went away, or is shutting down.</summary>
        public const int Unavailable = 14;
        /// <summary>
        /// The daemon needs a token and got none, or one it does not know
        /// (<see cref="PixelKilnClientOptions.Token"/>, <c>PIXELKILN_TOKEN</c>).
        /// </summary>
        public const int Unauthenticated = 16;

        /// <summary>The gRPC name of a code number (<c>3</c> gives <c>"INVALID_ARGUMENT"</c>).</summary>
        public static string Name(int code)
        {
            switch (code)
            {
                case 0: return "OK";
                case Cancelled: return "CANCELLED";
                case Unknown: return "UNKNOWN";
                case InvalidArgument: return "INVALID_ARGUMENT";
                case DeadlineExceeded: return "DEADLINE_EXCEEDED";
                case NotFound: return "NOT_FOUND";
                case 6: return "ALREADY_EXISTS";
                case PermissionDenied: return "PERMISSION_DENIED";
                case ResourceExhausted: return "RESOURCE_EXHAUSTED";
                case 9: return "FAILED_PRECONDITION";
                case 10: return "ABORTED";
                case 11: return "OUT_OF_RANGE";
                case 12: return "UNIMPLEMENTED";
                case Internal: return "INTERNAL";
                case Unavailable: return "UNAVAILABLE";
                case 15: return "DATA_LOSS";
                case Unauthenticated: return "UNAUTHENTICATED";
                default: return "CODE_" + code;
            }
        }
    }

    /// <summary>
    /// A call failed. <see cref="CodeName"/> is the gRPC status name the daemon sent
    /// (<c>INVALID_ARGUMENT</c>, <c>NOT_FOUND</c>, <c>RESOURCE_EXHAUSTED</c>, <c>CANCELLED</c>, ...)
    /// and <see cref="Detail"/> its message, which names the offending field and its limit.
    /// </summary>
    /// <example>
    /// <code>
    /// try { await client.GenerateAsync(new GenerateRequest { Prompt = "x", Width = 100 }); }
    /// catch (PixelKilnException e) when (e.Code == StatusCodes.InvalidArgument)
    /// {
    ///     Debug.LogWarning(e.Detail);   // "width: 100 is not a multiple of 8 ..."
    /// }
    /// </code>
    /// </example>
    public class PixelKilnException : Exception
    {
        /// <summary>Creates an exception for a status code and the daemon's message.</summary>
        public PixelKilnException(int code, string codeName, string detail)
            : this(code, codeName, detail, null)
        {
        }

        /// <summary>Creates an exception for a status code, a message and the underlying cause.</summary>
        public PixelKilnException(int code, string codeName, string detail, Exception inner)
            : base((string.IsNullOrEmpty(codeName) ? StatusCodes.Name(code) : codeName) + ": " + detail, inner)
        {
            Code = code;
            CodeName = string.IsNullOrEmpty(codeName) ? StatusCodes.Name(code) : codeName;
            Detail = detail ?? "";
        }

        /// <summary>The gRPC status code number (see <see cref="StatusCodes"/>).</summary>
        public int Code { get; private set; }

        /// <summary>The gRPC status name, for example <c>INVALID_ARGUMENT</c>.</summary>
        public string CodeName { get; private set; }

        /// <summary>The message without the code name prefix.</summary>
        public string Detail { get; private set; }

        internal static PixelKilnException FromError(V1.Error error)
        {
            return new PixelKilnException(error.Code, error.CodeName, error.Message);
        }
    }

    /// <summary>
    /// The daemon could not be reached (not running, wrong port, not a PixelKiln endpoint) or the
    /// connection was lost; every call pending on that connection fails with this exception.
    /// Its code is <c>UNAVAILABLE</c>. The next call reconnects when
    /// <see cref="PixelKilnClientOptions.AutoReconnect"/> is on.
    /// </summary>
    public sealed class PixelKilnConnectionException : PixelKilnException
    {
        /// <summary>Creates a connection error with an explanation and its cause.</summary>
        public PixelKilnConnectionException(string detail, Exception inner)
            : base(StatusCodes.Unavailable, "UNAVAILABLE", detail, inner)
        {
        }
    }
}
