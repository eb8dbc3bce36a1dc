// The API's shapes, as far as the UI reads them (the server's README and /openapi.json are the reference).

export type Status = 'idle' | 'running' | 'failed' | 'paused';

export interface TaskError {
  code: string;
  message: string;
}

/** A row of `GET /v1/sessions` and of the feed's `session.summary`. */
export interface SessionSummary {
  id: string;
  title: string | null;
  status: Status;
  created_at: string | number;
  updated_at: string | number;
  agent_id: string | null;
  agent_name?: string | null;
  kind: 'default' | 'sub_agent';
  parent_session_id: string | null;
  last_task_error: TaskError | null;
  archived?: boolean;
  pending_elicitations_count: number;
}

export interface Elicitation {
  elicitation_id: string;
  params: {
    message?: string;
    phase?: string;
    policy_name?: string;
    content_preview?: string;
    tool_name?: string;
    target_session_id?: string;
    /** An MCP server's question: the server's key, and the fields it asks for. */
    mcp_server?: string;
    requestedSchema?: { properties?: Record<string, SchemaField>; required?: string[] };
    [key: string]: unknown;
  };
}

/** A field of an MCP question's `requestedSchema` (flat, primitive). */
export interface SchemaField {
  type?: string;
  title?: string;
  description?: string;
  enum?: (string | number)[];
  enumNames?: string[];
  oneOf?: { const: string | number; title?: string }[];
  minimum?: number;
  maximum?: number;
  default?: unknown;
}

export interface Snapshot extends SessionSummary {
  items: NestedItem[];
  last_seq: number;
  pending_elicitations: Record<string, Elicitation> | Elicitation[];
  usage_by_model: Record<string, Record<string, number>>;
  harness?: string | null;
  llm_model?: string | null;
  active_response_id?: string | null;
}

/** A snapshot's item: its data nested. */
export interface NestedItem {
  id: string;
  type: string;
  status?: string;
  response_id?: string | null;
  created_at?: string | number;
  data: Record<string, unknown>;
}

export interface ContentPart {
  type: string;
  text?: string;
  file_id?: string;
  filename?: string;
}

/** An item with its data spread on top (the stream's `response.output_item.done`, `/items`). */
export interface Item {
  id: string;
  type: string;
  status?: string;
  response_id?: string | null;
  role?: 'user' | 'assistant' | 'system';
  content?: ContentPart[] | string;
  name?: string;
  arguments?: string;
  call_id?: string;
  output?: unknown;
  summary?: Array<{ text?: string } | string>;
  source?: string;
  code?: string;
  message?: string;
  model?: string;
  [key: string]: unknown;
}

export interface Agent {
  id: string;
  name: string;
  config?: { description?: string; executor?: { harness?: string; model?: string } };
}

export interface FileResource {
  id: string;
  name?: string;
  metadata?: { filename?: string; bytes?: number; content_type?: string; source?: string; created_at?: number };
}

export interface Comment {
  id: string;
  path: string;
  body: string;
  status?: string;
  start_index?: number | null;
  end_index?: number | null;
  anchor_content?: string | null;
}

export interface ChildSession {
  id: string;
  title?: string | null;
  status?: Status;
  busy?: boolean;
  current_task_status?: string | null;
  sub_agent_name?: string | null;
  agent_name?: string | null;
}

export interface Terminal {
  id: string;
  name?: string;
  status?: string;
}

export interface ListPage<T> {
  data: T[];
  has_more?: boolean;
}

/** One frame of a session's stream: `type` is the event name; persisted ones carry `sequence_number`. */
export interface StreamEvent {
  type: string;
  sequence_number: number | null;
  [key: string]: any;
}
