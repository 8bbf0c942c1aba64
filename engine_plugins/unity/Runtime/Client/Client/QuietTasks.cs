// Fire-and-forget tasks whose failure nobody awaits. Hand-written.

using System.Threading.Tasks;

namespace PixelKiln.Client
{
    /// <summary>Observes the exception of a task nobody awaits, so it is not reported as unobserved.</summary>
    internal static class QuietTasks
    {
        public static void Observe(Task task)
        {
            task.ContinueWith(t => { var ignored = t.Exception; }, TaskContinuationOptions.OnlyOnFaulted);
        }
    }
}
