// One WebSocket connection: its socket, send lock, receive loop and pending calls. Hand-written.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Net.WebSockets;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Protobuf;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>
    /// One connection. Its receive loop is the only reader of the socket: it reassembles each
    /// message from its WebSocket fragments, parses the Envelope and hands it to the call
    /// registered under its request id. Sends go through one lock (ClientWebSocket allows one
    /// outstanding send). When the loop ends, every pending call fails with the same
    /// <see cref="PixelKilnConnectionException"/>.
    /// </summary>
    internal sealed class Connection
    {
        private const int ReceiveChunk = 64 * 1024;

        private readonly ConcurrentDictionary<string, PendingCall> calls =
            new ConcurrentDictionary<string, PendingCall>(StringComparer.Ordinal);
        private readonly SemaphoreSlim sendLock = new SemaphoreSlim(1, 1);
        private readonly CancellationTokenSource stop = new CancellationTokenSource();
        private readonly Action<Connection, PixelKilnConnectionException> onClosed;
        private int closed;

        public Connection(ClientWebSocket socket, Uri uri, long maxMessageBytes,
            Action<Connection, PixelKilnConnectionException> onClosed)
        {
            Socket = socket;
            Uri = uri;
            MaxSendBytes = maxMessageBytes;
            MaxReceiveBytes = maxMessageBytes;
            this.onClosed = onClosed;
        }

        public ClientWebSocket Socket { get; private set; }

        public Uri Uri { get; private set; }

        /// <summary>The largest frame sent: the smaller of the client's limit and the daemon's.</summary>
        public long MaxSendBytes { get; set; }

        /// <summary>The largest message accepted from the daemon: the client's limit.</summary>
        public long MaxReceiveBytes { get; private set; }

        public bool IsOpen
        {
            get { return Volatile.Read(ref closed) == 0 && Socket.State == WebSocketState.Open; }
        }

        /// <summary>Why the connection ended (null while open).</summary>
        public PixelKilnConnectionException CloseReason { get; private set; }

        public void Start()
        {
            Task.Run(() => ReceiveLoopAsync());
        }

        public bool Add(PendingCall call)
        {
            if (Volatile.Read(ref closed) != 0) return false;
            if (!calls.TryAdd(call.RequestId, call)) return false;
            // Closed meanwhile: Close() may have missed this call.
            if (Volatile.Read(ref closed) != 0)
            {
                Remove(call);
                return false;
            }
            return true;
        }

        public void Remove(PendingCall call)
        {
            ((ICollection<KeyValuePair<string, PendingCall>>)calls).Remove(
                new KeyValuePair<string, PendingCall>(call.RequestId, call));
        }

        public bool HasCall(string requestId)
        {
            return calls.ContainsKey(requestId);
        }

        /// <summary>Sends one frame; serialised with every other send on this connection.</summary>
        public async Task SendAsync(byte[] frame, CancellationToken cancellation)
        {
            if (frame.LongLength > MaxSendBytes)
                throw new PixelKilnException(StatusCodes.ResourceExhausted, "RESOURCE_EXHAUSTED",
                    "frame of " + frame.LongLength + " bytes exceeds the message limit of " + MaxSendBytes
                    + " bytes (the daemon would close the connection; raise --max-message-mib on the daemon "
                    + "and PixelKilnClientOptions.MaxMessageBytes together, or send a smaller image)");
            ThrowIfClosed();
            await sendLock.WaitAsync(cancellation).ConfigureAwait(false);
            try
            {
                ThrowIfClosed();
                // Not the caller's token: a send cancelled halfway would corrupt the stream.
                await Socket.SendAsync(new ArraySegment<byte>(frame), WebSocketMessageType.Binary, true, stop.Token)
                    .ConfigureAwait(false);
            }
            catch (PixelKilnException)
            {
                throw;
            }
            catch (Exception e)
            {
                PixelKilnConnectionException lost = Lost("sending failed: " + e.Message, e);
                Close(lost);
                throw CloseReason ?? lost;
            }
            finally
            {
                sendLock.Release();
            }
        }

        /// <summary>Sends a close frame (bounded by <paramref name="timeout"/>), then ends the connection.</summary>
        public async Task CloseGracefullyAsync(TimeSpan timeout, PixelKilnConnectionException reason)
        {
            try
            {
                using (var limit = new CancellationTokenSource(timeout))
                {
                    if (Socket.State == WebSocketState.Open || Socket.State == WebSocketState.CloseReceived)
                        await Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "client closing", limit.Token)
                            .ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
                // The socket is aborted below either way.
            }
            Close(reason);
        }

        /// <summary>Ends the connection once: aborts the socket and fails every pending call.</summary>
        public void Close(PixelKilnConnectionException reason)
        {
            if (Interlocked.Exchange(ref closed, 1) != 0) return;
            CloseReason = reason;
            try
            {
                stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
            Socket.Abort();
            Socket.Dispose();
            foreach (KeyValuePair<string, PendingCall> entry in calls)
            {
                PendingCall call;
                if (calls.TryRemove(entry.Key, out call)) call.Fail(reason);
            }
            onClosed(this, reason);
        }

        private void ThrowIfClosed()
        {
            if (Volatile.Read(ref closed) != 0)
                throw CloseReason ?? Lost("the connection is closed", null);
        }

        private PixelKilnConnectionException Lost(string why, Exception inner)
        {
            return new PixelKilnConnectionException(
                "connection to the PixelKiln daemon at " + Uri + " lost: " + why
                + "; calls in flight on it failed (the next call reconnects when AutoReconnect is on)", inner);
        }

        private async Task ReceiveLoopAsync()
        {
            byte[] chunk = new byte[ReceiveChunk];
            var message = new MemoryStream();
            PixelKilnConnectionException reason = null;
            try
            {
                while (reason == null)
                {
                    message.SetLength(0);
                    WebSocketReceiveResult received;
                    do
                    {
                        received = await Socket.ReceiveAsync(new ArraySegment<byte>(chunk), stop.Token)
                            .ConfigureAwait(false);
                        if (received.MessageType == WebSocketMessageType.Close)
                        {
                            reason = Lost(DescribeClose(received.CloseStatus, received.CloseStatusDescription), null);
                            break;
                        }
                        if (message.Length + received.Count > MaxReceiveBytes)
                        {
                            reason = Lost("the daemon sent a message over the client's limit of " + MaxReceiveBytes
                                + " bytes (PixelKilnClientOptions.MaxMessageBytes)", null);
                            break;
                        }
                        message.Write(chunk, 0, received.Count);
                    }
                    while (!received.EndOfMessage);
                    if (reason != null || received.MessageType != WebSocketMessageType.Binary) continue;
                    Envelope envelope;
                    try
                    {
                        envelope = Envelope.Parser.ParseFrom(message.GetBuffer(), 0, (int)message.Length);
                    }
                    catch (ProtoException e)
                    {
                        reason = Lost("the daemon sent a frame that is not an Envelope (" + e.Message
                            + "); is this port the PixelKiln WebSocket carrier?", e);
                        continue;
                    }
                    Deliver(envelope);
                }
            }
            catch (Exception e)
            {
                if (Volatile.Read(ref closed) == 0)
                    reason = Lost(e is WebSocketException || e is IOException || e is OperationCanceledException
                        ? "the daemon went away (" + e.Message + ")"
                        : "receive loop failed: " + e, e);
            }
            Close(reason ?? Lost("the connection ended", null));
        }

        private void Deliver(Envelope envelope)
        {
            PendingCall call;
            if (!calls.TryGetValue(envelope.RequestId, out call)) return;  // late answer of a finished call
            call.OnEnvelope(envelope);
        }

        internal static string DescribeClose(WebSocketCloseStatus? status, string description)
        {
            string detail = string.IsNullOrEmpty(description) ? "" : " \"" + description + "\"";
            if (!status.HasValue) return "the daemon closed the connection" + detail;
            switch ((int)status.Value)
            {
                case 1000: return "the daemon closed the connection" + detail;
                case 1001: return "the daemon is shutting down (1001)" + detail;
                case 1008: return "the daemon refused the connection (1008)" + detail;
                case 1009:
                    return "the daemon closed the connection because a frame exceeded its message limit (1009, "
                        + "pixelkiln serve --max-message-mib)" + detail;
                case 1011: return "the daemon hit an internal error (1011)" + detail;
                default: return "the daemon closed the connection (" + (int)status.Value + ")" + detail;
            }
        }
    }
}
