// The PixelKilnClient's handshake: opens the WebSocket (TLS and token from ClientSecurity), then
// reads the daemon's status once to prove it is the PixelKiln carrier. Hand-written.

using System;
using System.Net.WebSockets;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    public sealed partial class PixelKilnClient
    {
        private async Task<Connection> OpenAsync(CancellationToken cancellationToken)
        {
            ClientSecurity security = ClientSecurity.Resolve(Options);
            var socket = new ClientWebSocket();
            socket.Options.KeepAliveInterval = Options.KeepAliveInterval;
            socket.Options.SetBuffer(64 * 1024, 64 * 1024);
            security.Apply(socket, Options.Uri);
            Connection connection = null;
            using (var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                attempt.CancelAfter(Options.ConnectTimeout);
                try
                {
                    // WhenAny as well as the token: some runtimes ignore cancellation during the
                    // TCP connect, and an attempt must never hang past ConnectTimeout.
                    Task connecting = socket.ConnectAsync(Options.Uri, attempt.Token);
                    Task finished = await Task.WhenAny(connecting, Task.Delay(Options.ConnectTimeout, cancellationToken))
                        .ConfigureAwait(false);
                    if (finished != connecting)
                    {
                        socket.Abort();
                        QuietTasks.Observe(connecting);
                        cancellationToken.ThrowIfCancellationRequested();
                        throw new TimeoutException("no WebSocket handshake within " + Options.ConnectTimeout.TotalSeconds + " s");
                    }
                    try
                    {
                        await connecting.ConfigureAwait(false);
                    }
                    catch (WebSocketException)
                    {
                        // Refused by HTTP status (a token or Origin)? Then say so, and do not retry.
                        PixelKilnException refusal = await security.ExplainRefusalAsync(Options.Uri, Options.ConnectTimeout)
                            .ConfigureAwait(false);
                        if (refusal != null) throw refusal;
                        throw;
                    }
                    connection = new Connection(socket, Options.Uri, Options.MaxMessageBytes, OnConnectionClosed);
                    connection.Start();
                    // Read the status once: proves this is a PixelKiln carrier and gives its limit.
                    var call = new UnaryCall(connection, NewId("hello"), Envelope.BodyOneofCase.StatusResponse);
                    Register(connection, call);
                    call.Watch(attempt.Token);
                    await SendAsync(connection, new Envelope { RequestId = call.RequestId, Status = new StatusRequest() },
                        attempt.Token).ConfigureAwait(false);
                    Envelope answer = await call.Task.ConfigureAwait(false);
                    StatusResponse status = answer.StatusResponse;
                    if (status.MaxMessageBytes > 0 && (long)status.MaxMessageBytes < connection.MaxSendBytes)
                        connection.MaxSendBytes = (long)status.MaxMessageBytes;
                    Volatile.Write(ref serverStatus, status);
                    return connection;
                }
                catch (OperationCanceledException e)
                {
                    Abandon(socket, connection);
                    if (cancellationToken.IsCancellationRequested) throw;
                    throw new TimeoutException("no answer within " + Options.ConnectTimeout.TotalSeconds + " s", e);
                }
                catch (Exception)
                {
                    Abandon(socket, connection);
                    throw;
                }
            }
        }

        private static void Abandon(ClientWebSocket socket, Connection connection)
        {
            if (connection != null)
                connection.Close(new PixelKilnConnectionException("connection attempt abandoned", null));
            else
            {
                socket.Abort();
                socket.Dispose();
            }
        }
    }
}
