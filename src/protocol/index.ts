// The wire format of ChatWait: events, event ids, turn states and bodies. Clients import the types
// (type-only); the server validates and documents with the schemas.
export * from './event-id.js';
export * from './events.js';
export * from './responses.js';
export * from './turn.js';
