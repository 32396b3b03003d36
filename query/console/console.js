// The operator console (docs/operations.md, "Console"). Plain script, no build step.
//
// Every value shown comes from the API and goes into the page as text (textContent,
// setAttribute), never as markup, so nothing an event or an error carries can run here.
// The token lives in this tab's sessionStorage and goes out as a bearer token: no cookie
// carries authority. Views refresh every few seconds while the tab is visible.
'use strict';

(() => {
  const REFRESH_MS = 2000;
  const TOKEN_KEY = 'ordo.console.token';
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    timer: null,
    generation: 0, // a render that finishes after a newer one started is dropped
    openLetters: new Set(), // dead letters whose details are open
    confirmSkip: null, // the letter whose Skip asks for a second click
    busy: new Set(), // letters with a request in flight
    live: true, // whether the view drawn last wants refreshing
    notice: '',
  };

  // --- building the page ---------------------------------------------------------------

  // el('td', {class: 'num', title: t}, child, 'text', ...): children are nodes or text.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const badge = (text) => el('span', {class: 'badge ' + String(text)}, String(text));
  const dash = (value) => (value === null || value === undefined || value === '' ? '—' : value);

  function table(headers, rows, attrs) {
    return el('div', {class: 'scroll'},
      el('table', attrs || {},
        el('thead', {}, el('tr', {}, headers.map((h) => el('th', {scope: 'col'}, h)))),
        el('tbody', {}, rows)));
  }

  function problemBox(error) {
    return el('div', {class: 'problem', role: 'alert', dataset: {status: error.status || 0}},
      error.message || String(error));
  }

  function time(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
  }

  function seconds(value) {
    if (value === null || value === undefined) return '—';
    return Number(value).toFixed(value < 10 ? 2 : 0) + ' s';
  }

  function duration(ms) {
    if (!isFinite(ms)) return '—';
    if (ms < 1) return (ms * 1000).toFixed(0) + ' µs';
    if (ms < 1000) return ms.toFixed(ms < 10 ? 2 : 0) + ' ms';
    return (ms / 1000).toFixed(2) + ' s';
  }

  // --- the API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem, forwarded) {
      super(ApiError.describe(status, problem, forwarded));
      this.status = status;
      this.problem = problem;
    }
    static describe(status, problem, forwarded) {
      const detail = problem && (problem.detail || problem.title);
      const who = forwarded ? 'The Command API' : 'The API';
      if (status === 401) return who + ' wants a valid token: paste one above. ' + (detail || '');
      if (status === 403) return who + ' says your token lacks the scope this needs. ' + (detail || '');
      return detail ? detail + ' (HTTP ' + status + ')' : 'HTTP ' + status;
    }
  }

  async function api(method, path) {
    const headers = {Accept: 'application/json'};
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    // The console's actions require this header: a cross-site form cannot send it, and a
    // cross-site script cannot without a preflight this server never grants.
    if (method !== 'GET') headers['X-Ordo-Console'] = '1';
    let response;
    try {
      response = await fetch(path, {method, headers, cache: 'no-store'});
    } catch (e) {
      throw new ApiError(0, {detail: 'The query service cannot be reached.'});
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body, path.startsWith('/console/api/'));
    return body;
  }

  // A section that shows its own failure, so one view with two sources keeps the other.
  async function section(title, load, attrs) {
    const box = el('section', attrs || {}, el('h2', {}, title));
    try {
      box.append(await load());
    } catch (e) {
      box.append(problemBox(e));
    }
    return box;
  }

  // --- views ---------------------------------------------------------------------------------

  async function projectionsView() {
    const relays = section('Relay leaders and the horizon', async () => {
      const data = await api('GET', '/v1/admin/relays');
      if (!data.relays.length) return el('p', {class: 'muted'}, 'No relay has run yet.');
      const worst = Math.max(0, ...data.relays.map((r) => r.horizon_hidden_seconds || 0));
      return el('div', {},
        el('p', {dataset: {horizon: worst}},
          'Committed events hidden behind the oldest open transaction: ',
          el('strong', {}, seconds(worst)),
          worst > 5 ? el('span', {class: 'error'}, ' — a long transaction holds every reader back') : ''),
        table(['Shard', 'Leader', 'Leading since', 'Last seen', 'Horizon hides', 'Checkpoint'],
          data.relays.map((r) => {
            const live = r.seen_seconds_ago !== null && r.seen_seconds_ago < 10;
            return el('tr', {dataset: {shard: r.shard}},
              el('td', {class: 'num'}, r.shard),
              el('td', {}, r.leader ? el('code', {}, r.leader) : '—', ' ',
                badge(live ? 'live' : 'stale')),
              el('td', {}, time(r.leader_since)),
              el('td', {}, r.seen_seconds_ago === null ? '—' : seconds(r.seen_seconds_ago) + ' ago'),
              el('td', {class: 'num'}, seconds(r.horizon_hidden_seconds)),
              el('td', {}, el('code', {}, r.checkpoint)));
          }), {id: 'relays'}));
    });
    const projections = section('Projections', async () => {
      const data = await api('GET', '/v1/admin/projections');
      if (!data.projections.length) return el('p', {class: 'muted'}, 'No projection has run yet.');
      return el('div', {}, projectionSummary(data.projections), el('h3', {}, 'Partitions'), table(
        ['Projection', 'Partition', 'Owner', 'Checkpoint', 'Lag', 'Oldest pending', 'Breaker',
          'Last transitions', 'Dead letters', 'Halted on'],
        data.projections.map((p) => el('tr', {dataset: {projection: p.projection, partition: p.partition}},
          el('td', {}, p.projection),
          el('td', {class: 'num'}, p.partition),
          el('td', {}, p.owner ? el('code', {}, p.owner) : el('span', {class: 'muted'}, 'none')),
          el('td', {}, el('code', {}, p.checkpoint)),
          el('td', {class: 'num'}, p.lag_events === null ? '—' : p.lag_events + ' events'),
          el('td', {class: 'num'}, seconds(p.oldest_pending_seconds)),
          el('td', {class: 'breaker'}, p.breaker ? badge(p.breaker) : '—'),
          el('td', {class: 'transitions'}, transitions(p.breaker_transitions || [])),
          el('td', {class: 'num'}, p.dead_letters
            ? el('a', {href: '#/dead-letters'}, String(p.dead_letters)) : '0'),
          el('td', {}, dash(p.halted_on_dead_letter)))),
        {id: 'projections'}));
    });
    return el('div', {}, await relays, await projections);
  }

  // One line per projection: its worst breaker, total lag, owners and unsettled letters.
  function projectionSummary(partitions) {
    const order = {open: 3, half_open: 2, closed: 1};
    const by = new Map();
    for (const p of partitions) {
      const s = by.get(p.projection) || {name: p.projection, partitions: 0, lag: 0, oldest: 0,
        breaker: null, letters: 0, owners: new Set(), halted: 0};
      s.partitions += 1;
      s.lag += p.lag_events || 0;
      s.oldest = Math.max(s.oldest, p.oldest_pending_seconds || 0);
      if (p.breaker && (!s.breaker || order[p.breaker] > order[s.breaker])) s.breaker = p.breaker;
      s.letters += p.dead_letters || 0;
      if (p.owner) s.owners.add(p.owner);
      if (p.halted_on_dead_letter !== null && p.halted_on_dead_letter !== undefined) s.halted += 1;
      by.set(p.projection, s);
    }
    return table(['Projection', 'Partitions', 'Owners', 'Lag', 'Oldest pending', 'Breaker',
      'Dead letters', 'Halted'],
    [...by.values()].map((s) => el('tr', {dataset: {projection: s.name}},
      el('td', {}, s.name),
      el('td', {class: 'num'}, s.partitions),
      el('td', {}, s.owners.size ? [...s.owners].join(', ') : el('span', {class: 'muted'}, 'none')),
      el('td', {class: 'num'}, s.lag + ' events'),
      el('td', {class: 'num'}, seconds(s.oldest)),
      el('td', {class: 'breaker'}, s.breaker ? badge(s.breaker) : '—'),
      el('td', {class: 'num'}, s.letters),
      el('td', {class: 'num'}, s.halted))),
    {id: 'projection-summary'});
  }

  function transitions(list) {
    if (!list.length) return el('span', {class: 'muted'}, 'none');
    return el('ul', {class: 'plain'}, list.map((t) => el('li', {},
      badge(t.from), ' → ', badge(t.to), ' ', el('span', {class: 'muted'}, time(t.at)),
      t.reason ? el('div', {class: 'muted'}, t.reason) : '')));
  }

  const LETTER_STATUSES = ['parked', 'retry_requested', 'skip_requested', 'resolved', 'skipped', 'all'];
  const LETTER_PAGE = 100; // the route's largest page

  // #/dead-letters/<status>[/<cursor>]: parked letters (the work to do) unless told otherwise,
  // oldest first, a page at a time.
  async function deadLettersView(argument) {
    const [first, cursor] = argument.split('/');
    const status = LETTER_STATUSES.includes(first) ? first : 'parked';
    const after = /^[0-9]{1,18}$/.test(cursor || '') ? cursor : '';
    const filter = el('select', {id: 'letter-status', 'aria-label': 'Status',
      onchange: (e) => { location.hash = '#/dead-letters/' + e.target.value; }},
      LETTER_STATUSES.map((s) => el('option', {value: s, selected: s === status}, s)));
    let query = '?limit=' + LETTER_PAGE;
    if (status !== 'all') query += '&status=' + encodeURIComponent(status);
    if (after) query += '&cursor=' + after;
    const body = await section('Dead letters', async () => {
      const data = await api('GET', '/v1/admin/dead-letters' + query);
      const rows = [];
      for (const d of data.dead_letters) {
        const id = String(d.id);
        const open = state.openLetters.has(id);
        const busy = state.busy.has(id);
        const confirming = state.confirmSkip === id;
        const actions = d.status === 'parked'
          ? [el('button', {type: 'button', class: 'retry', disabled: busy,
            onclick: () => act(id, 'retry')}, 'Retry'),
          ' ',
          el('button', {type: 'button', class: 'skip danger', disabled: busy,
            title: 'Skipping gives the event up for this projection: it is never applied',
            onclick: () => {
              if (confirming) {
                act(id, 'skip');
              } else {
                state.confirmSkip = id;
                render();
              }
            }}, confirming ? 'Skip for good?' : 'Skip')]
          : [];
        rows.push(el('tr', {dataset: {letterId: id, status: d.status}},
          el('td', {class: 'num'}, id),
          el('td', {}, d.projection, el('div', {class: 'muted'}, 'partition ' + d.partition)),
          el('td', {}, el('code', {}, d.stream), el('div', {class: 'muted'}, 'version ' + d.version)),
          el('td', {}, d.type),
          el('td', {class: 'letter-error error'}, d.error),
          el('td', {class: 'num'}, d.attempts),
          el('td', {class: 'letter-status'}, badge(d.status)),
          el('td', {}, actions, ' ',
            el('button', {type: 'button', class: 'details', 'aria-expanded': String(open),
              onclick: () => {
                if (state.openLetters.has(id)) state.openLetters.delete(id);
                else state.openLetters.add(id);
                render();
              }}, open ? 'Hide' : 'Event'))));
        if (open) {
          const trace = d.metadata && d.metadata.trace_id;
          rows.push(el('tr', {class: 'letter-details', dataset: {detailsOf: id}},
            el('td', {colspan: 8},
              el('dl', {class: 'kv'},
                el('dt', {}, 'Event id'), el('dd', {}, el('code', {}, d.event_id)),
                el('dt', {}, 'Recorded'), el('dd', {}, time(d.recorded_at)),
                el('dt', {}, 'Checkpoint'), el('dd', {}, el('code', {}, d.checkpoint)),
                el('dt', {}, 'Policy'), el('dd', {}, d.policy),
                el('dt', {}, 'Parked'), el('dd', {}, time(d.created_at)),
                el('dt', {}, 'Trace'), el('dd', {}, trace
                  ? el('a', {href: '#/traces/' + encodeURIComponent(trace)}, trace) : '—')),
              el('h3', {}, 'Payload'), el('pre', {class: 'payload'}, JSON.stringify(d.payload, null, 2)),
              el('h3', {}, 'Metadata'), el('pre', {}, JSON.stringify(d.metadata, null, 2)))));
        }
      }
      const more = data.next_cursor
        ? el('p', {}, el('a', {id: 'letters-next',
          href: '#/dead-letters/' + status + '/' + encodeURIComponent(data.next_cursor)}, 'Next page'))
        : '';
      const back = after ? el('p', {}, el('a', {href: '#/dead-letters/' + status}, 'First page')) : '';
      if (!rows.length) return el('div', {}, back, el('p', {class: 'muted', id: 'no-letters'}, 'No dead letters here.'));
      return el('div', {}, back, table(['Id', 'Projection', 'Stream', 'Type', 'Error', 'Attempts', 'Status', ''],
        rows, {id: 'dead-letters'}), more);
    });
    return el('div', {}, el('p', {}, el('label', {for: 'letter-status'}, 'Show '), filter), body);
  }

  async function act(id, action) {
    state.confirmSkip = null;
    state.busy.add(id);
    try {
      const answer = await api('POST', '/console/api/dead-letters/' + encodeURIComponent(id) + '/' + action);
      state.notice = 'Dead letter ' + id + ': ' + (answer && answer.status ? answer.status : action + ' requested');
    } catch (e) {
      state.notice = 'Dead letter ' + id + ': ' + e.message;
    } finally {
      state.busy.delete(id);
    }
    render();
  }

  function searchForm(id, label, placeholder, value, route) {
    const input = el('input', {id, name: id, type: 'search', placeholder, value: value || '',
      spellcheck: 'false', autocomplete: 'off'});
    return el('form', {class: 'search', onsubmit: (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (v) location.hash = route + encodeURIComponent(v);
    }}, el('label', {for: id}, label), input, el('button', {type: 'submit'}, 'Show'));
  }

  // Places [from, to] (milliseconds) on a track spanning [t0, t1], in percent.
  function place(node, from, to, t0, t1) {
    const span = Math.max(t1 - t0, 1);
    const left = Math.min(100, Math.max(0, ((from - t0) / span) * 100));
    node.style.setProperty('left', left + '%');
    if (to !== undefined) {
      const width = Math.max(0, Math.min(100 - left, ((to - from) / span) * 100));
      node.style.setProperty('width', width + '%');
    }
    return node;
  }

  function axis(t0, t1) {
    const ticks = el('div', {class: 'ticks'});
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      ticks.append(place(el('span', {class: 'tick'}, f === 0 ? time(new Date(t0).toISOString())
        : '+' + duration((t1 - t0) * f)), t0 + (t1 - t0) * f, undefined, t0, t1));
    }
    return el('div', {class: 'axis'}, el('span', {}, ''), ticks);
  }

  const ms = (iso) => (iso ? Date.parse(iso) : NaN);

  async function sagasView(orderId) {
    const form = el('section', {}, el('h2', {}, 'Sagas'),
      searchForm('order-id', 'Order id', 'e.g. o-1001', orderId, '#/sagas/'));
    if (!orderId) return el('div', {}, form);
    let saga;
    try {
      saga = await api('GET', '/v1/sagas/' + encodeURIComponent(orderId));
    } catch (e) {
      return el('div', {}, form, problemBox(e));
    }
    const steps = saga.steps || [];
    const processes = saga.processes || [];
    const now = Date.now();
    const running = saga.status === 'running';
    // The axis spans what happened; a pending step's deadline and next attempt only while
    // the saga runs (a finished saga's unreached deadlines would squash the picture).
    const times = [];
    for (const s of steps) {
      times.push(ms(s.started_at), ms(s.finished_at));
      if (running && s.status === 'pending') times.push(ms(s.deadline_at), ms(s.retry_at));
      for (const f of s.failures || []) times.push(ms(f.at));
    }
    for (const p of processes) {
      times.push(ms(p.started_at), ms(p.ended_at));
      if (p.compensation) times.push(ms(p.compensation.started_at));
    }
    const known = times.filter((t) => isFinite(t));
    const t0 = known.length ? Math.min(...known) : now;
    let t1 = known.length ? Math.max(...known) : now;
    state.live = running || now - t1 < 10000;
    if (running) t1 = Math.max(t1, now);
    if (t1 <= t0) t1 = t0 + 1;

    const failed = steps.filter((s) => ['failed', 'rejected', 'timed_out'].includes(s.status));
    const why = [];
    for (const p of processes) {
      if (p.end_reason) why.push(p.process + ' ended: ' + p.end_reason);
      if (p.compensation && p.compensation.reason) why.push(p.process + ' compensated because ' + p.compensation.reason);
    }
    for (const s of failed) why.push(s.name + ' ' + s.status + (s.error ? ': ' + s.error : ''));

    const rows = steps.map((s) => {
      const end = isFinite(ms(s.finished_at)) ? ms(s.finished_at) : (running ? now : t1);
      const within = (t) => isFinite(t) && t >= t0 && t <= t1;
      const bar = place(el('div', {class: 'bar ' + s.status + (s.kind === 'compensation' ? ' compensation' : ''),
        title: s.name + ': ' + s.status + ', ' + s.attempts + ' attempt(s)' + (s.error ? ' — ' + s.error : '')}),
      ms(s.started_at), end, t0, t1);
      const marks = [];
      for (const f of s.failures || []) {
        marks.push(place(el('div', {class: 'mark failure', title: 'attempt ' + f.attempt + ' failed: ' + f.error +
          (f.retry_at ? ' (retry at ' + time(f.retry_at) + ')' : '')}), ms(f.at), undefined, t0, t1));
      }
      if (within(ms(s.deadline_at))) {
        marks.push(place(el('div', {class: 'mark deadline', title: 'deadline ' + time(s.deadline_at)}),
          ms(s.deadline_at), undefined, t0, t1));
      }
      if (within(ms(s.retry_at))) {
        marks.push(place(el('div', {class: 'mark retry', title: 'next attempt ' + time(s.retry_at)}),
          ms(s.retry_at), undefined, t0, t1));
      }
      return el('div', {class: 'row', dataset: {step: s.name, status: s.status}},
        el('div', {class: 'label', title: s.process}, s.name, ' ', el('span', {class: 'muted'}, s.kind)),
        el('div', {class: 'track'}, bar, marks));
    });
    for (const p of processes) {
      if (!p.compensation) continue;
      rows.push(el('div', {class: 'row', dataset: {compensation: p.process}},
        el('div', {class: 'label'}, 'compensation ', el('span', {class: 'muted'}, p.compensation.reason || '')),
        el('div', {class: 'track'}, place(el('div', {class: 'mark compensation-start',
          title: 'compensation started ' + time(p.compensation.started_at)}),
        ms(p.compensation.started_at), undefined, t0, t1))));
    }

    const stepRows = steps.map((s) => el('tr', {dataset: {step: s.name}},
      el('td', {}, s.name),
      el('td', {}, el('code', {}, s.process)),
      el('td', {}, s.kind),
      el('td', {}, badge(s.status)),
      el('td', {class: 'num'}, s.attempts),
      el('td', {}, time(s.started_at)),
      el('td', {}, time(s.finished_at)),
      el('td', {}, time(s.deadline_at)),
      el('td', {class: 'step-error'}, s.error ? el('span', {class: 'error'}, s.error) : '—',
        (s.failures || []).length
          ? el('ul', {class: 'plain muted'}, s.failures.map((f) => el('li', {},
            'attempt ' + f.attempt + ' at ' + time(f.at) + ': ' + f.error +
            (f.retry_at ? ', retried from ' + time(f.retry_at) : ''))))
          : '')));

    return el('div', {}, form,
      el('section', {id: 'saga', dataset: {status: saga.status, orderId: saga.order_id}},
        el('h2', {}, 'Order ', el('code', {}, saga.order_id), ' ', badge(saga.status)),
        el('dl', {class: 'kv'},
          el('dt', {}, 'Saga'), el('dd', {}, el('code', {}, saga.saga_id), ' (' + saga.mode + ')'),
          el('dt', {}, 'Trace'), el('dd', {}, saga.trace_id
            ? el('a', {href: '#/traces/' + encodeURIComponent(saga.trace_id), id: 'saga-trace'}, saga.trace_id)
            : '—'),
          why.length ? el('dt', {}, 'Why') : '',
          why.length ? el('dd', {id: 'saga-why'}, el('ul', {class: 'plain'}, why.map((w) => el('li', {}, w)))) : ''),
        el('h3', {}, 'Timeline'),
        el('div', {class: 'chart', id: 'saga-timeline'}, axis(t0, t1), rows),
        el('p', {class: 'legend'}, 'Bars: steps, coloured by outcome; dashed: compensations. ' +
          'Red ticks: failed attempts; black: deadlines; purple: next attempt; orange: compensation started.'),
        el('h3', {}, 'Steps'),
        table(['Step', 'Process', 'Kind', 'Status', 'Attempts', 'Started', 'Finished', 'Deadline', 'Error'],
          stepRows, {id: 'saga-steps'}),
        el('h3', {}, 'Processes'),
        table(['Process', 'Status', 'Started', 'Ended', 'Why it ended', 'Compensation', 'Deadlines'],
          processes.map((p) => el('tr', {},
            el('td', {}, el('code', {}, p.process)),
            el('td', {}, badge(p.status)),
            el('td', {}, time(p.started_at)),
            el('td', {}, time(p.ended_at)),
            el('td', {}, dash(p.end_reason)),
            el('td', {}, p.compensation
              ? [time(p.compensation.started_at), el('div', {class: 'muted'}, dash(p.compensation.reason))] : '—'),
            el('td', {}, el('ul', {class: 'plain'}, (p.deadlines || []).map((d) => el('li', {},
              d.name + ' ' + time(d.due_at) + (d.reached ? ' (reached)' : ''))))))))));
  }

  // The spans as a tree: each span after its parent, children by start time.
  function spanOrder(spans) {
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const children = new Map();
    const roots = [];
    for (const s of spans) {
      if (s.parent_span_id && byId.has(s.parent_span_id)) {
        if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
        children.get(s.parent_span_id).push(s);
      } else {
        roots.push(s);
      }
    }
    const byStart = (a, b) => a.start_ns - b.start_ns;
    const out = [];
    const seen = new Set();
    const visitOnce = (s, depth) => {
      if (seen.has(s.span_id)) return;
      seen.add(s.span_id);
      out.push({span: s, depth});
      for (const c of (children.get(s.span_id) || []).sort(byStart)) visitOnce(c, depth + 1);
    };
    for (const r of roots.sort(byStart)) visitOnce(r, 0);
    // Spans whose parents form a cycle reach no root: shown at the top level all the same.
    for (const s of [...spans].sort(byStart)) visitOnce(s, 0);
    return out;
  }

  async function tracesView(traceId) {
    const form = el('section', {}, el('h2', {}, 'Traces'),
      searchForm('trace-id', 'Trace id', '32 hex digits', traceId, '#/traces/'));
    if (!traceId) return el('div', {}, form);
    let trace;
    try {
      trace = await api('GET', '/v1/traces/' + encodeURIComponent(traceId.toLowerCase()));
    } catch (e) {
      return el('div', {}, form, problemBox(e));
    }
    const spans = trace.spans || [];
    const events = trace.events || [];
    const times = [];
    // A span without times (OTLP allows it) would put the axis in 1970.
    for (const s of spans) if (s.start_ns > 0) times.push(s.start_ns / 1e6, s.end_ns / 1e6);
    for (const e of events) times.push(ms(e.recorded_at));
    const known = times.filter((t) => isFinite(t));
    const t0 = known.length ? Math.min(...known) : Date.now();
    let t1 = known.length ? Math.max(...known) : t0 + 1;
    if (t1 <= t0) t1 = t0 + 1;
    const services = new Set(spans.map((s) => s.service));
    // Spans arrive a second or so after the work: a recent trace is refreshed, an old one not.
    state.live = Date.now() - t1 < 30000;

    const rows = spanOrder(spans).map(({span, depth}) => {
      const from = span.start_ns / 1e6;
      const to = span.end_ns / 1e6;
      const label = el('div', {class: 'label', title: span.service + ' · ' + span.name},
        '\u00a0'.repeat(depth * 2), el('strong', {}, span.service), ' ', span.name);
      const bar = place(el('div', {class: 'bar ' + (span.error ? 'error' : 'ok'),
        title: span.name + ' — ' + duration(to - from) + (span.status_message ? ' — ' + span.status_message : '')}),
      from, to, t0, t1);
      return el('div', {class: 'row', dataset: {span: span.span_id, service: span.service, error: span.error}},
        label, el('div', {class: 'track'}, bar));
    });
    const eventRows = events.map((e) => el('div', {class: 'row', dataset: {event: e.stream + '@' + e.version}},
      el('div', {class: 'label', title: e.stream}, e.type, ' ', el('span', {class: 'muted'}, e.stream)),
      el('div', {class: 'track'}, place(el('div', {class: 'mark event', title: e.type + ' at ' + time(e.recorded_at)}),
        ms(e.recorded_at), undefined, t0, t1))));

    return el('div', {}, form,
      el('section', {id: 'trace', dataset: {spans: spans.length, events: events.length}},
        el('h2', {}, 'Trace ', el('code', {}, trace.trace_id)),
        el('p', {class: 'muted'}, spans.length + ' spans from ' + services.size + ' service(s) (' +
          [...services].join(', ') + '), ' + events.length + ' events, over ' + duration(t1 - t0) + '.'),
        spans.length ? '' : el('p', {class: 'muted'}, 'No spans are kept for this trace: the services send ' +
          'spans here only when their OTLP exporter points at this query service.'),
        el('div', {class: 'chart', id: 'waterfall'}, axis(t0, t1), rows, eventRows),
        el('p', {class: 'legend'}, 'Bars: spans, under their parent (green ok, red error); dots: the events the trace wrote.'),
        el('h3', {}, 'Events'),
        table(['Recorded', 'Type', 'Stream', 'Version', 'Position'],
          events.map((e) => el('tr', {},
            el('td', {}, time(e.recorded_at)), el('td', {}, e.type), el('td', {}, el('code', {}, e.stream)),
            el('td', {class: 'num'}, e.version), el('td', {}, el('code', {}, e.position)))),
          {id: 'trace-events'})));
  }

  const VIEWS = {
    projections: projectionsView,
    'dead-letters': deadLettersView,
    sagas: sagasView,
    traces: tracesView,
  };

  function route() {
    const hash = location.hash.replace(/^#\/?/, '');
    const slash = hash.indexOf('/');
    let name = slash < 0 ? hash : hash.slice(0, slash);
    let argument = '';
    try {
      argument = slash < 0 ? '' : decodeURIComponent(hash.slice(slash + 1));
    } catch (e) {
      argument = '';
    }
    if (!VIEWS[name]) name = 'projections';
    return {name, argument};
  }

  // Draws the view the address names, then schedules its next refresh.
  async function render() {
    clearTimeout(state.timer);
    const generation = ++state.generation;
    const {name, argument} = route();
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.nav === name);
    }
    const main = document.getElementById('main');
    state.live = true;
    let content;
    try {
      content = await VIEWS[name](argument);
    } catch (e) {
      content = problemBox(e);
    }
    if (generation !== state.generation) return;
    const status = (state.notice ? state.notice + ' · ' : '') +
      (state.live ? 'Updated ' : 'Loaded ') + new Date().toLocaleTimeString();
    // Nothing changed: the page stays as it is, so a selection, an open menu or a click in
    // progress survives the refresh.
    if (main.firstChild && main.dataset.view === name && main.firstChild.isEqualNode(content)) {
      document.getElementById('status').textContent = status;
      if (state.live) state.timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    // A refresh must not take the text someone is typing.
    const focused = document.activeElement;
    const typing = focused && main.contains(focused) && focused.tagName === 'INPUT' ? focused.id : null;
    const typed = typing ? focused.value : null;
    main.replaceChildren(content);
    main.dataset.view = name;
    main.dataset.rendered = String(generation);
    if (typing) {
      const again = document.getElementById(typing);
      if (again) {
        again.value = typed;
        again.focus();
      }
    }
    document.getElementById('status').textContent = status;
    if (state.live) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function refresh() {
    if (document.hidden) {
      state.timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    render();
  }

  function start() {
    const input = document.getElementById('token');
    input.value = state.token;
    document.getElementById('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      state.token = input.value.trim();
      if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
      else sessionStorage.removeItem(TOKEN_KEY);
      state.notice = state.token ? 'Token set for this tab' : 'No token';
      render();
    });
    document.getElementById('token-forget').addEventListener('click', () => {
      state.token = '';
      input.value = '';
      sessionStorage.removeItem(TOKEN_KEY);
      state.notice = 'Token forgotten';
      render();
    });
    window.addEventListener('hashchange', () => {
      state.notice = '';
      render();
    });
    render();
  }

  start();
})();
