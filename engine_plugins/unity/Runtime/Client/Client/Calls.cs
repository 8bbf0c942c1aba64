// The pending calls of one connection, demultiplexed by request id. Hand-written.

using System;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>A call waiting for envelopes under its request id.</summary>
    internal abstract class PendingCall
    {
        protected PendingCall(Connection connection, string requestId)
        {
            Connection = connection;
            RequestId = requestId;
        }

        public Connection Connection { get; private set; }

        public string RequestId { get; private set; }

        /// <summary>An envelope for this id; called on the receive thread, in arrival order.</summary>
        public abstract void OnEnvelope(Envelope envelope);

        /// <summary>The connection ended (or the client was disposed).</summary>
        public abstract void Fail(Exception error);

        protected void Unregister()
        {
            Connection.Remove(this);
        }
    }

    /// <summary>One request, one answer: cancel, models, status.</summary>
    internal sealed class UnaryCall : PendingCall
    {
        private readonly TaskCompletionSource<Envelope> completion =
            new TaskCompletionSource<Envelope>(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Envelope.BodyOneofCase expected;
        private CancellationTokenRegistration registration;

        public UnaryCall(Connection connection, string requestId, Envelope.BodyOneofCase expected)
            : base(connection, requestId)
        {
            this.expected = expected;
        }

        public Task<Envelope> Task { get { return completion.Task; } }

        public void Watch(CancellationToken token)
        {
            if (!token.CanBeCanceled || completion.Task.IsCompleted) return;
            registration = token.Register(() =>
            {
                Unregister();
                completion.TrySetCanceled(token);
            });
        }

        public override void OnEnvelope(Envelope envelope)
        {
            Unregister();
            registration.Dispose();
            if (envelope.BodyCase == Envelope.BodyOneofCase.Error)
                completion.TrySetException(PixelKilnException.FromError(envelope.Error));
            else if (envelope.BodyCase != expected)
                completion.TrySetException(new PixelKilnException(
                    StatusCodes.Internal, "INTERNAL",
                    "expected " + expected + " in answer to request " + RequestId + ", got " + envelope.BodyCase));
            else
                completion.TrySetResult(envelope);
        }

        public override void Fail(Exception error)
        {
            registration.Dispose();
            completion.TrySetException(error);
        }
    }

    /// <summary>One generation: events to the caller's IProgress, then a Result or an error.</summary>
    internal sealed class GenerateCall : PendingCall
    {
        private readonly PixelKilnClient client;
        private readonly IProgress<GenerateEvent> events;
        private readonly TaskCompletionSource<Result> completion =
            new TaskCompletionSource<Result>(TaskCreationOptions.RunContinuationsAsynchronously);
        private CancellationToken token;
        private CancellationTokenRegistration registration;
        private int cancelRequested;

        public GenerateCall(PixelKilnClient client, Connection connection, string requestId,
            IProgress<GenerateEvent> events)
            : base(connection, requestId)
        {
            this.client = client;
            this.events = events;
        }

        public Task<Result> Task { get { return completion.Task; } }

        public void Watch(CancellationToken cancellation)
        {
            token = cancellation;
            if (cancellation.CanBeCanceled && !completion.Task.IsCompleted)
                registration = cancellation.Register(RequestCancel);
        }

        /// <summary>The caller's token fired: ask the daemon to stop, and stop waiting after a grace.</summary>
        private void RequestCancel()
        {
            if (Interlocked.Exchange(ref cancelRequested, 1) == 1) return;
            client.SendCancelInBackground(Connection, RequestId);
            TimeSpan grace = client.Options.CancelGrace;
            System.Threading.Tasks.Task.Delay(grace).ContinueWith(_ =>
            {
                if (completion.Task.IsCompleted) return;
                Unregister();
                completion.TrySetCanceled(token);
            }, TaskScheduler.Default);
        }

        public override void OnEnvelope(Envelope envelope)
        {
            if (envelope.BodyCase == Envelope.BodyOneofCase.Error)
            {
                Finish();
                PixelKilnException error = PixelKilnException.FromError(envelope.Error);
                bool byToken = error.Code == StatusCodes.Cancelled
                    && Volatile.Read(ref cancelRequested) == 1 && token.IsCancellationRequested;
                // Posted like the events, so the await never overtakes an event still queued.
                if (byToken) client.Dispatch(() => completion.TrySetCanceled(token));
                else client.Dispatch(() => completion.TrySetException(error));
                return;
            }
            if (envelope.BodyCase != Envelope.BodyOneofCase.Event) return;
            GenerateEvent generateEvent = envelope.Event;
            bool final = generateEvent.EventCase == GenerateEvent.EventOneofCase.Result;
            if (final) Finish();
            if (events != null)
            {
                client.Dispatch(() =>
                {
                    try
                    {
                        events.Report(generateEvent);
                    }
                    catch (Exception handlerError)
                    {
                        HandlerFailed(handlerError);
                    }
                });
            }
            if (final)
            {
                // Posted after the events, so a caller on the callback context sees every event
                // before its await resumes.
                Result result = generateEvent.Result;
                client.Dispatch(() => completion.TrySetResult(result));
            }
        }

        private void HandlerFailed(Exception handlerError)
        {
            if (completion.Task.IsCompleted) return;
            Finish();
            if (Interlocked.Exchange(ref cancelRequested, 1) == 0)
                client.SendCancelInBackground(Connection, RequestId);
            completion.TrySetException(handlerError);
        }

        private void Finish()
        {
            Unregister();
            registration.Dispose();
        }

        public override void Fail(Exception error)
        {
            registration.Dispose();
            completion.TrySetException(error);
        }
    }

    /// <summary>Routes a connection's envelopes for one live session to it.</summary>
    internal sealed class LiveCall : PendingCall
    {
        private readonly LiveSession session;

        public LiveCall(LiveSession session, Connection connection, string requestId)
            : base(connection, requestId)
        {
            this.session = session;
        }

        public override void OnEnvelope(Envelope envelope)
        {
            session.OnEnvelope(envelope);
        }

        public override void Fail(Exception error)
        {
            session.Finish(error);
        }

        public void Done()
        {
            Unregister();
        }
    }
}
