import type { BuiltInToolName, Config } from '../../config.js';
import { createCalculatorTool } from './calculator.js';
import type { ChatTool } from './chat-tool.js';
import { createConvertUnitsTool } from './convert-units.js';
import { createCurrentTimeTool } from './current-time.js';
import { loadToolPlugins } from './tool-plugins.js';

/** Every built-in tool, by the name `TOOLS` uses. */
const BUILT_IN_FACTORIES: Readonly<Record<BuiltInToolName, () => ChatTool>> = {
  get_current_time: () => createCurrentTimeTool(),
  calculate: createCalculatorTool,
  convert_units: createConvertUnitsTool,
};

/** The tools the model may call, by name: the built-ins `TOOLS` turns on, then the plugins of `TOOLS_DIR`. */
export async function createToolSet(config: Pick<Config, 'TOOLS' | 'TOOLS_DIR'>): Promise<ReadonlyMap<string, ChatTool>> {
  const tools = new Map<string, ChatTool>();
  for (const name of config.TOOLS) tools.set(name, BUILT_IN_FACTORIES[name]());
  if (config.TOOLS_DIR !== undefined) {
    for (const plugin of await loadToolPlugins(config.TOOLS_DIR, new Set(tools.keys()))) tools.set(plugin.name, plugin);
  }
  return tools;
}
