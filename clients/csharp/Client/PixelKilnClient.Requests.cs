// The PixelKilnClient's calls: generate, cancel, models, status and live sessions, each routed
// by request id over the shared connection. Hand-written (not generated).

using System;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    public sealed partial class PixelKilnClient
    {
        /// <summary>
        /// Runs one generation and returns its <see cref="Result"/> (images, seeds, recipe, timings,
        /// maps, atlas). <paramref name="events"/> receives every event as it arrives: Accepted,
        /// Queued, Progress, Preview, Result (use <see cref="GenerateHandlers"/> for typed callbacks).
        /// </summary>
        /// <param name="request">
        /// The request. When its <c>ClientRequestId</c> is empty one is assigned (and written into
        /// the request), so <see cref="CancelAsync"/> can be called with it.
        /// </param>
        /// <param name="events">
        /// Optional; called on the callback context, in order. Without it (and without previews
        /// asked for) the request asks for the Result alone (<c>Preview.ResultOnly</c>, written
        /// into the request): the daemon sends one envelope, not one per event.
        /// </param>
        /// <param name="cancellationToken">
        /// Cancelling sends a cancel envelope: the daemon stops at the next step and skips the VAE
        /// decode; the task then ends cancelled (or after <see cref="PixelKilnClientOptions.CancelGrace"/>
        /// without an answer). A result that arrives before the cancel takes effect is returned.
        /// </param>
        /// <exception cref="PixelKilnException">The daemon refused or failed the request
        /// (<c>INVALID_ARGUMENT</c> names the field; <c>CANCELLED</c> when cancelled by
        /// <see cref="CancelAsync"/> or at shutdown).</exception>
        /// <exception cref="PixelKilnConnectionException">Not reachable, or the connection was lost.</exception>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        /// <example>
        /// <code>
        /// var request = new GenerateRequest { Prompt = "gold coin sprite", Background = Background.Transparent };
        /// request.Preview = new PreviewSettings { EveryNSteps = 1 };
        /// Result result = await client.GenerateAsync(request, new GenerateHandlers
        /// {
        ///     Progress = p => progressBar.value = (float)p.Step / p.Total,
        /// }, cts.Token);
        /// byte[] png = result.Images[0].Image.Data;
        /// </code>
        /// </example>
        public async Task<Result> GenerateAsync(GenerateRequest request, IProgress<GenerateEvent> events = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (request == null) throw new ArgumentNullException("request");
            cancellationToken.ThrowIfCancellationRequested();
            if (request.ClientRequestId.Length == 0) request.ClientRequestId = NewId("gen");
            if (events == null && (request.Preview == null || request.Preview.EveryNSteps == 0))
            {
                if (request.Preview == null) request.Preview = new PreviewSettings();
                request.Preview.ResultOnly = true;
            }
            string requestId = request.ClientRequestId;
            byte[] frame = new Envelope { RequestId = requestId, Generate = request }.ToByteArray();
            Connection connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            var call = new GenerateCall(this, connection, requestId, events);
            await RegisterAndSendAsync(connection, call, frame, cancellationToken).ConfigureAwait(false);
            call.Watch(cancellationToken);
            return await call.Task.ConfigureAwait(false);
        }

        /// <summary>
        /// Cancels a queued or running generation by its client request id (the envelope request
        /// id), its server id (<c>Accepted.RequestId</c>) or its <c>client_request_id</c>. Returns
        /// false when nothing with that id is queued or running. The generation's own task then
        /// fails with <c>CANCELLED</c>.
        /// </summary>
        public async Task<bool> CancelAsync(string requestId, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (string.IsNullOrEmpty(requestId)) throw new ArgumentException("requestId is required", "requestId");
            Envelope answer = await UnaryAsync(new Envelope { Cancel = new CancelRequest { RequestId = requestId } },
                Envelope.BodyOneofCase.CancelResponse, cancellationToken).ConfigureAwait(false);
            return answer.CancelResponse.Cancelled;
        }

        /// <summary>The model catalogue and the daemon's default model.</summary>
        public async Task<ListModelsResponse> ListModelsAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { ListModels = new ListModelsRequest() },
                Envelope.BodyOneofCase.ListModelsResponse, cancellationToken).ConfigureAwait(false);
            return answer.ListModelsResponse;
        }

        /// <summary>
        /// The daemon's state: version, device, dtype, memory, loaded models, queue depth and
        /// capacity, <c>Ready</c> (true after warm-up) and its message limit. Cheap: poll it for health.
        /// </summary>
        public async Task<StatusResponse> StatusAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { Status = new StatusRequest() },
                Envelope.BodyOneofCase.StatusResponse, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref serverStatus, answer.StatusResponse);
            return answer.StatusResponse;
        }

        /// <summary>Loads a model (catalogue name, hub id, local folder or .safetensors path).</summary>
        public async Task<ModelInfo> LoadModelAsync(string name, CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { LoadModel = new LoadModelRequest { Name = name } },
                Envelope.BodyOneofCase.ModelInfo, cancellationToken).ConfigureAwait(false);
            return answer.ModelInfo;
        }

        /// <summary>Unloads a model; false when it was not loaded.</summary>
        public async Task<bool> UnloadModelAsync(string name, CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { UnloadModel = new UnloadModelRequest { Name = name } },
                Envelope.BodyOneofCase.UnloadModelResponse, cancellationToken).ConfigureAwait(false);
            return answer.UnloadModelResponse.Unloaded;
        }

        /// <summary>
        /// Opens a live img2img session on the current connection (connect first, or use
        /// <see cref="OpenLiveAsync"/>). <paramref name="settings"/> go with the first input.
        /// </summary>
        /// <exception cref="PixelKilnConnectionException">Not connected.</exception>
        /// <example>
        /// <code>
        /// LiveSession live = client.OpenLive(new LiveSettings { Prompt = "lava rock", Strength = 0.6f, Steps = 2 });
        /// live.FrameReceived += frame => { if (!frame.Unchanged) Show(frame.Image.Data); };
        /// live.Send(sketchPng);               // never blocks; the daemon works on the newest input
        /// live.Send(nextSketchPng, new LiveSettings { Prompt = "ice" });
        /// await live.End();                   // frames for inputs already sent still arrive
        /// </code>
        /// </example>
        public LiveSession OpenLive(LiveSettings settings = null)
        {
            ThrowIfDisposed();
            Connection connection = Volatile.Read(ref current);
            if (connection == null || !connection.IsOpen) throw NotConnected();
            return StartLive(connection, settings);
        }

        /// <summary><see cref="OpenLive"/> after connecting if needed.</summary>
        public async Task<LiveSession> OpenLiveAsync(LiveSettings settings = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            Connection connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            return StartLive(connection, settings);
        }

        internal Task SendAsync(Connection connection, Envelope envelope, CancellationToken cancellationToken)
        {
            return connection.SendAsync(envelope.ToByteArray(), cancellationToken);
        }

        /// <summary>Best effort: asks the daemon to cancel <paramref name="target"/>; the answer is ignored.</summary>
        internal void SendCancelInBackground(Connection connection, string target)
        {
            var envelope = new Envelope { RequestId = NewId("cancel"), Cancel = new CancelRequest { RequestId = target } };
            Task.Run(async () =>
            {
                try
                {
                    await SendAsync(connection, envelope, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Connection gone: the daemon cancels everything of a closed connection itself.
                }
            });
        }

        private void Register(Connection connection, PendingCall call)
        {
            if (connection.Add(call)) return;
            if (connection.HasCall(call.RequestId))
                throw new PixelKilnException(StatusCodes.InvalidArgument, "INVALID_ARGUMENT",
                    "request_id: '" + call.RequestId + "' is already in use on this connection");
            throw connection.CloseReason ?? NotConnected();
        }

        private async Task<Envelope> UnaryAsync(Envelope envelope, Envelope.BodyOneofCase expected,
            CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            envelope.RequestId = NewId("call");
            Connection connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            var call = new UnaryCall(connection, envelope.RequestId, expected);
            await RegisterAndSendAsync(connection, call, envelope.ToByteArray(), cancellationToken).ConfigureAwait(false);
            call.Watch(cancellationToken);
            return await call.Task.ConfigureAwait(false);
        }

        /// <summary>Registers <paramref name="call"/> and sends its first frame; unregisters it if the send fails.</summary>
        private async Task RegisterAndSendAsync(Connection connection, PendingCall call, byte[] frame,
            CancellationToken cancellationToken)
        {
            Register(connection, call);
            try
            {
                await connection.SendAsync(frame, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception)
            {
                connection.Remove(call);
                throw;
            }
        }

        private LiveSession StartLive(Connection connection, LiveSettings settings)
        {
            var session = new LiveSession(this, connection, NewId("live"), settings);
            Register(connection, session.Call);
            return session;
        }
    }
}
