import type { ToolStepView } from '../chat-types';

/** The tools the model called for an answer, each a collapsible step: name and status, then arguments, result and duration. */
export function ToolSteps({ steps }: { steps: ToolStepView[] }) {
  return (
    <ol className="tool-steps" aria-label="Tool steps">
      {steps.map((step) => {
        const state = step.output === undefined ? 'running' : step.isError ? 'error' : 'done';
        return (
          <li key={step.callId}>
            <details className="tool-step" data-testid="tool-step" data-state={state}>
              <summary>
                <span className="tool-icon" aria-hidden="true">
                  {state === 'running' ? '…' : state === 'error' ? '!' : '✓'}
                </span>
                <span className="tool-name">{step.name}</span>
                <span className="tool-status">
                  {state === 'running' ? 'running…' : `${state === 'error' ? 'failed, ' : ''}${formatDuration(step.durationMs)}`}
                </span>
              </summary>
              <div className="tool-body">
                <div className="tool-label">Arguments</div>
                <pre data-testid="tool-arguments">{prettyJson(step.arguments)}</pre>
                {step.output !== undefined && (
                  <>
                    <div className="tool-label">Result</div>
                    <pre data-testid="tool-output">{prettyJson(step.output)}</pre>
                  </>
                )}
              </div>
            </details>
          </li>
        );
      })}
    </ol>
  );
}

function formatDuration(milliseconds: number | undefined): string {
  if (milliseconds === undefined) return '';
  return milliseconds < 1000 ? `${Math.round(milliseconds * 10) / 10} ms` : `${(milliseconds / 1000).toFixed(1)} s`;
}

/** JSON indented for reading; anything else as it is. */
function prettyJson(text: string): string {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? JSON.stringify(value, null, 2) : text;
  } catch {
    return text;
  }
}
