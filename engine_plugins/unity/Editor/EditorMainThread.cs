using System;
using System.Collections.Concurrent;
using System.Threading;
using UnityEditor;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Runs callbacks from the client's receive thread on the editor's main thread, drained by
    /// <c>EditorApplication.update</c> (a few per frame at most, so a burst of previews never
    /// stalls the editor). Used as the client's <c>CallbackContext</c>.
    /// </summary>
    [InitializeOnLoad]
    internal static class EditorMainThread
    {
        private const int MaxPerTick = 64;
        private static readonly ConcurrentQueue<Action> queue = new ConcurrentQueue<Action>();
        private static readonly Context context = new Context();

        static EditorMainThread()
        {
            EditorApplication.update += Drain;
        }

        /// <summary>Posts to the main thread; pass this to <c>PixelKilnClientOptions.CallbackContext</c>.</summary>
        public static SynchronizationContext SynchronizationContext
        {
            get { return context; }
        }

        public static void Post(Action action)
        {
            queue.Enqueue(action);
        }

        private static void Drain()
        {
            Action action;
            for (int i = 0; i < MaxPerTick && queue.TryDequeue(out action); i++)
            {
                try
                {
                    action();
                }
                catch (Exception e)
                {
                    UnityEngine.Debug.LogException(e);
                }
            }
        }

        private sealed class Context : SynchronizationContext
        {
            public override void Post(SendOrPostCallback callback, object state)
            {
                queue.Enqueue(() => callback(state));
            }

            public override void Send(SendOrPostCallback callback, object state)
            {
                throw new NotSupportedException("PixelKiln never blocks on the editor's main thread");
            }

            public override SynchronizationContext CreateCopy()
            {
                return this;
            }
        }
    }
}
