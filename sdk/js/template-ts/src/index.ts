// `{{name}}`: counts the events of the `events` topic by their JSON `type`.
//
// State: `count/<type>` -> `{"count": N}`.
// Query `count` with `{"type": str}`: that object, or `null` for a type
// never seen.

import { type Event, type Infer, QueryError, defineProjection, query, state, t, u64 } from '@projector/sdk';

// An event (or query arguments): only `type` is read, other fields are ignored.
const Typed = t.struct('Typed', { type: t.string });
const Count = t.struct('Count', { count: t.u64 });
type Count = Infer<typeof Count>;

export const handler = defineProjection({
  name: '{{name}}',
  version: '0.1.0',
  sources: ['events'],
  // Bump when the state layout changes: the host then rebuilds the state by
  // replaying the events.
  stateVersion: 1,
  queries: ['count'],

  handle(event: Event): void {
    const { type } = event.decode(Typed);
    const key = `count/${type}`;
    const count: Count = state.getJson(key, Count) ?? Count.default();
    count.count = u64.add(count.count, 1);
    state.putJson(key, count, Count);
  },

  query(name: string, args: Uint8Array): Count | null {
    if (name !== 'count') throw QueryError.unknownQuery();
    const { type } = query.argsJson(args, Typed);
    return state.getJson(`count/${type}`, Count) ?? null;
  },
});
