export { Agent } from './agent.js';
export { parseConfig, type AgentConfig } from './config.js';
