// Gear's dashboard: plain JavaScript over the JSON API of the same origin (/api/v1/).
//
// Rules kept throughout: whatever the server sends goes into the page as text (textContent,
// Node.append of strings, setAttribute), never as HTML; no request ever asks for more than one page
// of a list (the server pages, filters and sorts), so 10,000 functions or a million jobs cost the
// browser one page; actions exist in the DOM only when the session allows them, and each goes
// through the confirmation dialog. The page's state lives in its URL hash (#/jobs?function=F), so
// reloading, the back button and links all work.
'use strict';

(() => {
  // ---- the DOM, safely

  // el creates an element: attrs are set as attributes (on* as listeners, text as textContent),
  // children appended as nodes or as text.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c !== undefined && c !== null && c !== false) e.append(c);
    }
    return e;
  }

  const $ = (sel) => document.querySelector(sel);
  const fmtInt = new Intl.NumberFormat('en-US');
  const fmtDec = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const num = (n) => (typeof n === 'number' ? fmtInt.format(n) : '—');

  // compact writes 1234 as 1.2k, for chart axes.
  function compact(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return fmtDec.format(v / 1e9) + 'G';
    if (a >= 1e6) return fmtDec.format(v / 1e6) + 'M';
    if (a >= 1e3) return fmtDec.format(v / 1e3) + 'k';
    return fmtDec.format(v);
  }

  // age writes seconds as 4s, 3m 5s, 2h 10m, 3d 4h.
  function age(s) {
    if (typeof s !== 'number' || !(s > 0)) return '—';
    s = Math.floor(s);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }

  const sumPrio = (p) => (p ? (p.high || 0) + (p.normal || 0) + (p.low || 0) : 0);
  const prioText = (p) => (p ? `${num(p.high)} / ${num(p.normal)} / ${num(p.low)}` : '—');

  // ---- the API

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // request sends one same-origin request and returns its JSON; a failure throws an APIError with
  // the server's own message ({"error": ..., "status": N}).
  async function request(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    let resp;
    try {
      resp = await fetch('/api/v1/' + path, init);
    } catch (e) {
      throw new APIError(0, 'the server did not answer: ' + e.message);
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      // not JSON: the text itself is the message
    }
    if (!resp.ok) {
      const msg = data && typeof data.error === 'string' ? data.error : text.trim() || resp.statusText;
      throw new APIError(resp.status, `${resp.status}: ${msg}`);
    }
    return data;
  }
  const get = (path) => request('GET', path);
  const post = (path, body) => request('POST', path, body);
  const enc = encodeURIComponent;

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // ---- session: what this user may do

  const session = { canAct: false, who: '', note: '' };

  async function loadSession() {
    const badge = $('#session');
    try {
      const s = await get('session');
      session.canAct = s.read_only === false;
      session.who = s.who || '';
      badge.replaceChildren(
        session.who ? el('span', { class: 'who', text: session.who }) : '',
        s.read_only ? el('span', { class: 'badge', id: 'read-only', text: 'read-only' }) : '',
        // Signed in at /login with the server's token: the session cookie can be given back.
        session.who.startsWith('token (dashboard)') ? el('button', { type: 'button', id: 'sign-out', class: 'link', onclick: signOut }, 'Sign out') : '',
      );
    } catch (e) {
      // Unknown rights: no action is offered (the server would refuse them anyway).
      session.canAct = false;
      badge.replaceChildren(el('span', { class: 'badge', title: e.message, text: 'actions off' }));
    }
  }

  async function signOut() {
    try {
      await fetch('/logout', { method: 'POST', credentials: 'same-origin' });
    } finally {
      location.assign('/login');
    }
  }

  // ---- the flash line: the result of the last action, or its error

  function flash(kind, text) {
    const f = $('#flash');
    f.dataset.kind = kind;
    f.hidden = false;
    f.replaceChildren(
      el('span', { text }),
      el('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: clearFlash }, '×'),
    );
  }
  function clearFlash() {
    const f = $('#flash');
    f.hidden = true;
    f.replaceChildren();
    delete f.dataset.kind;
  }

  // ---- the confirmation dialog

  // confirmAction asks before an action: title, body (nodes: text, fields), then run() on OK.
  // run returns the message to show, or throws; a validation error thrown as {field: message}
  // keeps the dialog open. After the action, done() (a reload) runs whatever the outcome.
  function confirmAction({ title, body, ok, run, done }) {
    const dlg = confirmDialog();
    const okBtn = $('#confirm-ok');
    const cancelBtn = $('#confirm-cancel');
    const err = $('#confirm-error');
    $('#confirm-title').textContent = title;
    $('#confirm-body').replaceChildren(...body);
    err.hidden = true;
    err.textContent = '';
    okBtn.textContent = ok;
    okBtn.disabled = false;
    cancelBtn.disabled = false;
    cancelBtn.onclick = () => dlg.close('cancel');
    okBtn.onclick = async () => {
      okBtn.disabled = true;
      cancelBtn.disabled = true;
      let outcome;
      try {
        outcome = ['ok', await run()];
      } catch (e) {
        if (e instanceof InvalidInput) {
          err.textContent = e.message;
          err.hidden = false;
          okBtn.disabled = false;
          cancelBtn.disabled = false;
          return;
        }
        outcome = ['error', e.message];
      }
      dlg.close(outcome[0]);
      flash(outcome[0], outcome[1]);
      if (done) done();
    };
    dlg.showModal();
    okBtn.focus();
  }

  class InvalidInput extends Error {}

  // confirmDialog is made on the first action: a read-only page has no action button at all.
  function confirmDialog() {
    let dlg = $('#confirm');
    if (!dlg) {
      dlg = el('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-title' },
        el('h2', { id: 'confirm-title' }),
        el('div', { id: 'confirm-body' }),
        el('p', { id: 'confirm-error', class: 'error', hidden: true }),
        el('div', { class: 'buttons' },
          el('button', { type: 'button', id: 'confirm-cancel' }, 'Cancel'),
          el('button', { type: 'button', id: 'confirm-ok', class: 'danger' }, 'Confirm')));
      document.body.append(dlg);
    }
    return dlg;
  }

  function actionButton(label, data, onclick) {
    const attrs = { type: 'button', class: 'action', onclick };
    for (const [k, v] of Object.entries(data)) attrs['data-' + k] = v;
    return el('button', attrs, label);
  }

  // The actions, each with its question and its result.
  function cancelJob(job, done) {
    confirmAction({
      title: 'Cancel this job?',
      body: [
        el('p', {}, 'Job ', el('code', { text: job.handle }), ' of ', el('code', { text: job.function || '?' }), '.'),
        el('p', { class: 'muted' }, 'Its waiting clients get WORK_FAIL; a stored job is removed from the store.'),
      ],
      ok: 'Cancel job',
      run: async () => {
        await post(`jobs/${enc(job.handle)}/cancel`);
        return `Cancelled job ${job.handle}.`;
      },
      done,
    });
  }

  function cancelQueued(fn, done) {
    const q = fn.queued || {};
    const select = el('select', { id: 'confirm-priority' },
      el('option', { value: '' }, `all priorities (${num(sumPrio(q))})`),
      ['high', 'normal', 'low'].map((p) => el('option', { value: p }, `${p} (${num(q[p])})`)));
    confirmAction({
      title: 'Cancel queued jobs?',
      body: [
        el('p', {}, 'Cancel the jobs of ', el('code', { text: fn.function }), ' waiting in its queue (running jobs go on).'),
        el('label', {}, 'Priority ', select),
      ],
      ok: 'Cancel jobs',
      run: async () => {
        const prio = select.value;
        const r = await post(`functions/${enc(fn.function)}/cancel-queued${query({ priority: prio })}`);
        return `Cancelled ${num(r && r.cancelled)} queued ${prio ? prio + ' ' : ''}jobs of ${fn.function}.`;
      },
      done,
    });
  }

  function dropFunction(fn, done) {
    confirmAction({
      title: 'Drop this function?',
      body: [
        el('p', {}, 'Drop ', el('code', { text: fn.function }), ' from the server.'),
        el('p', { class: 'muted' }, 'Refused while it has workers or jobs.'),
      ],
      ok: 'Drop',
      run: async () => {
        await post(`functions/${enc(fn.function)}/drop`);
        return `Dropped ${fn.function}.`;
      },
      done,
    });
  }

  function setMaxQueue(fn, done) {
    const cur = fn.max_queue || {};
    const inputs = {};
    const fields = ['high', 'normal', 'low'].map((p) => {
      inputs[p] = el('input', { type: 'number', min: '0', step: '1', id: `maxqueue-${p}`, value: String(cur[p] || 0) });
      return el('label', {}, p, ' ', inputs[p]);
    });
    confirmAction({
      title: 'Set the queue limits?',
      body: [
        el('p', {}, 'The most jobs ', el('code', { text: fn.function }), ' may queue, per priority (0: no limit).'),
        el('div', { class: 'fields' }, fields),
      ],
      ok: 'Set limits',
      run: async () => {
        const limits = {};
        for (const [p, input] of Object.entries(inputs)) {
          const v = input.value.trim();
          if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new InvalidInput(`${p}: a whole number, 0 or more`);
          limits[p] = Number(v);
        }
        await post(`functions/${enc(fn.function)}/maxqueue`, limits);
        return `Queue limits of ${fn.function}: high ${limits.high}, normal ${limits.normal}, low ${limits.low}.`;
      },
      done,
    });
  }

  function pauseFunction(fn, done) {
    const pausing = !fn.paused;
    confirmAction({
      title: pausing ? 'Pause this function?' : 'Resume this function?',
      body: [
        el('p', {}, pausing ? 'Give no worker a job of ' : 'Hand out the jobs of ', el('code', { text: fn.function }),
          pausing ? ' until it is resumed.' : ' again.'),
        el('p', { class: 'muted' }, pausing ? 'Queued jobs stay and submits are still accepted; running jobs finish.' : 'Sleeping workers are woken for its queued jobs.'),
      ],
      ok: pausing ? 'Pause' : 'Resume',
      run: async () => {
        await post(`functions/${enc(fn.function)}/${pausing ? 'pause' : 'resume'}`);
        return `${pausing ? 'Paused' : 'Resumed'} ${fn.function}.`;
      },
      done,
    });
  }

  function setRunLimits(fn, done) {
    const running = el('input', { type: 'number', min: '0', step: '1', id: 'limit-running', value: String(fn.max_running || 0) });
    const rate = el('input', { type: 'number', min: '0', step: 'any', id: 'limit-rate', value: String(fn.rate_per_sec || 0) });
    confirmAction({
      title: 'Set the run limits?',
      body: [
        el('p', {}, 'How many jobs of ', el('code', { text: fn.function }), ' may run at once across all workers, and start per second (0: no limit).'),
        el('div', { class: 'fields' }, el('label', {}, 'running at once ', running), el('label', {}, 'starts per second ', rate)),
      ],
      ok: 'Set limits',
      run: async () => {
        const r = running.value.trim(), q = rate.value.trim();
        if (!/^\d+$/.test(r)) throw new InvalidInput('running at once: a whole number, 0 or more');
        if (!/^\d+(\.\d+)?$/.test(q)) throw new InvalidInput('starts per second: a number, 0 or more');
        await post(`functions/${enc(fn.function)}/limits`, { max_running: Number(r), rate_per_sec: Number(q), rate_burst: 0 });
        return `Run limits of ${fn.function}: ${Number(r) || 'any number'} at once, ${Number(q) || 'no limit on'} starts a second.`;
      },
      done,
    });
  }

  // ---- routing: #/page/ARG?query

  function parseHash() {
    const h = location.hash.replace(/^#\/?/, '');
    const i = h.indexOf('?');
    const path = i < 0 ? h : h.slice(0, i);
    const params = Object.fromEntries(new URLSearchParams(i < 0 ? '' : h.slice(i + 1)));
    let parts;
    try {
      parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch (_) {
      parts = ['?'];
    }
    return { page: parts[0] || 'overview', arg: parts[1], params };
  }

  function hashOf(page, arg, params) {
    return '#/' + (page === 'overview' ? '' : page) + (arg !== undefined ? '/' + enc(arg) : '') + query(params || {});
  }

  // go changes the hash: a new history entry, or (replace, while typing) the current one.
  function go(page, arg, params, replace) {
    const h = hashOf(page, arg, params);
    if (replace) {
      history.replaceState(null, '', h);
      route();
    } else if (location.hash !== h) {
      location.hash = h;
    } else {
      route();
    }
  }

  let current = null; // {key, view}

  function route() {
    const r = parseHash();
    const key = r.page + '/' + (r.arg || '');
    if (current && current.key === key) {
      current.view.load(r.params);
      return;
    }
    if (current && current.view.stop) current.view.stop();
    clearFlash();
    const old = $('#main');
    const main = el('main', { id: 'main', 'data-page': r.page, 'data-ready': '0' });
    old.replaceWith(main);
    const make = r.page === 'jobs' && r.arg !== undefined ? jobView : views[r.page];
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.nav === r.page);
    }
    current = { key, view: make ? make(main, r.arg) : notFound(main) };
    current.view.load(r.params);
  }

  function notFound(main) {
    return {
      load() {
        main.replaceChildren(el('h1', {}, 'Not found'), el('p', {}, el('a', { href: '#/' }, 'Overview')));
        main.dataset.ready = '1';
      },
    };
  }

  // loader runs a view's loads one at a time, latest wins: an answer to a superseded request is
  // dropped, so a slow page cannot overwrite a newer one.
  function loader(main, fetcher, render) {
    let seq = 0;
    let stopped = false;
    return {
      async load(...args) {
        const mine = ++seq;
        main.dataset.ready = '0';
        let data, err;
        try {
          data = await fetcher(...args);
        } catch (e) {
          err = e;
        }
        if (stopped || mine !== seq) return;
        render(data, err, ...args);
        main.dataset.ready = '1';
      },
      stop() {
        stopped = true;
      },
    };
  }

  // errorLine shows a failed request; refused credentials get a way to sign in again (/login
  // serves servers with a token; with basic auth the browser asks on reload).
  const errorLine = (e) => el('p', { class: 'error', 'data-error': String(e.status || 0) }, e.message,
    e.status === 401 ? [' ', el('a', { href: '/login' }, 'Sign in')] : '');

  // ---- lists: server-side search, sort, filters and paging

  const LIMITS = [20, 50, 100, 500, 1000];
  const DEFAULT_LIMIT = 50;

  // listView is a page listing one kind of thing, from the endpoint of the same name, whose answer
  // is {total, offset, PAGE: [...]}. spec:
  //   title, empty (text when nothing matches)
  //   filters: [{name, label, kind: 'search'|'exact'|'select', options}]
  //   columns: [{key, label, sort (the server's sort key), num, cell(row) -> node or text}]
  //   rowAttrs(row): data attributes of a row; actions(row, reload): buttons (only if allowed)
  //   defaultSort: {sort, order}
  function listView(page, spec) {
    return (main) => {
      let params = {};
      const controls = {};
      const toolbar = el('div', { class: 'toolbar' });
      for (const f of spec.filters) {
        let input;
        if (f.kind === 'select') {
          input = el('select', { id: `filter-${f.name}`, name: f.name },
            el('option', { value: '' }, 'any ' + f.label.toLowerCase()),
            f.options.map((o) => el('option', { value: o }, o)));
          input.addEventListener('change', () => set({ [f.name]: input.value }));
        } else {
          input = el('input', { type: 'search', id: `filter-${f.name}`, name: f.name, placeholder: f.placeholder || '', autocomplete: 'off', spellcheck: 'false' });
          if (f.kind === 'search') {
            // Each keystroke narrows the list after a pause; the history keeps one entry.
            input.addEventListener('input', () => {
              clearTimeout(input.typing);
              input.typing = setTimeout(() => {
                input.typing = null;
                set({ [f.name]: input.value }, true);
              }, 300);
            });
          }
          // An exact filter (a function name) applies on Enter or when the field is left.
          input.addEventListener('change', () => {
            clearTimeout(input.typing);
            input.typing = null;
            if (input.value !== (params[f.name] || '')) set({ [f.name]: input.value });
          });
        }
        controls[f.name] = input;
        toolbar.append(el('label', {}, f.label + ' ', input));
      }
      const auto = el('input', { type: 'checkbox', id: 'auto-refresh' });
      let timer = null;
      auto.addEventListener('change', () => schedule());
      toolbar.append(
        el('button', { type: 'button', id: 'refresh', onclick: () => view.load(params) }, 'Refresh'),
        el('label', { class: 'check' }, auto, ' every 5 s'),
      );
      const summary = el('span', { class: 'summary', id: 'list-summary' });
      const pager = el('div', { class: 'pager' });
      const tableBox = el('div', { class: 'table-box' });
      main.replaceChildren(el('h1', {}, spec.title), toolbar, el('div', { class: 'bar' }, summary, pager), tableBox);

      const limitOf = (p) => (LIMITS.includes(Number(p.limit)) ? Number(p.limit) : DEFAULT_LIMIT);
      const offsetOf = (p) => Math.max(0, Math.floor(Number(p.offset) || 0));

      // set changes some parameters; a change of filter or sort goes back to the first page.
      function set(change, replace) {
        const next = { ...params, ...change };
        if (!('offset' in change)) delete next.offset;
        for (const k of Object.keys(next)) if (next[k] === '' || next[k] === undefined) delete next[k];
        if (next.limit !== undefined && Number(next.limit) === DEFAULT_LIMIT) delete next.limit;
        if (Number(next.offset) === 0) delete next.offset;
        go(page, undefined, next, replace);
      }

      function schedule() {
        clearTimeout(timer);
        timer = null;
        if (auto.checked) timer = setTimeout(() => view.load(params), 5000);
      }

      const fetcher = (p) => {
        const q = { offset: offsetOf(p), limit: limitOf(p) };
        for (const f of spec.filters) q[f.name] = p[f.name];
        if (spec.defaultSort) {
          q.sort = p.sort || spec.defaultSort.sort;
          q.order = p.order || spec.defaultSort.order;
        }
        return get(page + query(q));
      };

      function header(p) {
        const sort = p.sort || (spec.defaultSort && spec.defaultSort.sort);
        const order = p.order || (spec.defaultSort && spec.defaultSort.order);
        const ths = spec.columns.map((c) => {
          if (!c.sort) return el('th', { class: c.num ? 'num' : null }, c.label);
          const active = c.sort === sort;
          const nextOrder = active ? (order === 'asc' ? 'desc' : 'asc') : c.sort === 'name' ? 'asc' : 'desc';
          return el('th', { class: c.num ? 'num' : null, 'aria-sort': active ? (order === 'asc' ? 'ascending' : 'descending') : null },
            el('button', { type: 'button', class: 'sort', 'data-sort': c.sort, onclick: () => set({ sort: c.sort, order: nextOrder }) },
              c.label, active ? (order === 'asc' ? ' ▲' : ' ▼') : ''));
        });
        if (session.canAct && spec.actions) ths.push(el('th', {}, 'Actions'));
        return el('thead', {}, el('tr', {}, ths));
      }

      function pagerButtons(total, offset, limit) {
        const last = total > 0 ? Math.floor((total - 1) / limit) * limit : 0;
        const btn = (label, to, disabled) =>
          el('button', { type: 'button', 'data-pager': label.toLowerCase(), disabled: disabled || null, onclick: () => set({ offset: to }) }, label);
        const size = el('select', { id: 'page-size', 'aria-label': 'rows per page' },
          LIMITS.map((n) => el('option', { value: String(n), selected: n === limit || null }, `${n} / page`)));
        size.addEventListener('change', () => set({ limit: size.value }));
        pager.replaceChildren(
          btn('First', 0, offset === 0),
          btn('Prev', Math.max(0, offset - limit), offset === 0),
          btn('Next', offset + limit, offset + limit >= total),
          btn('Last', last, offset >= last),
          size,
        );
      }

      const reload = () => view.load(params);

      const render = (data, err, p) => {
        schedule();
        if (err) {
          tableBox.replaceChildren(errorLine(err));
          summary.textContent = '';
          pager.replaceChildren();
          return;
        }
        const rows = (data && data[page]) || [];
        const total = (data && data.total) || 0;
        const offset = (data && data.offset) || 0;
        const limit = limitOf(p);
        // Past the end (the list shrank under us): go to the last page.
        if (rows.length === 0 && offset > 0 && total > 0) {
          set({ offset: Math.floor((total - 1) / limit) * limit }, true);
          return;
        }
        summary.textContent = total === 0 ? spec.empty : `${num(offset + 1)}–${num(offset + rows.length)} of ${num(total)}`;
        pagerButtons(total, offset, limit);
        const body = el('tbody', {}, rows.map((row) => {
          const cells = spec.columns.map((c) => el('td', { class: c.num ? 'num' : null, 'data-col': c.key }, c.cell(row)));
          if (session.canAct && spec.actions) cells.push(el('td', { class: 'actions' }, spec.actions(row, reload)));
          return el('tr', spec.rowAttrs(row), cells);
        }));
        tableBox.replaceChildren(el('table', { id: `${page}-table` }, header(p), body));
      };

      const inner = loader(main, fetcher, render);
      const view = {
        load(p) {
          params = p;
          for (const [name, input] of Object.entries(controls)) {
            // The fields show the URL's filters, but for one being typed into (its pause pending).
            if (!input.typing) input.value = p[name] || '';
          }
          inner.load(p);
        },
        stop() {
          inner.stop();
          clearTimeout(timer);
        },
      };
      return view;
    };
  }

  const views = {};

  const fnLink = (name) => el('a', { href: hashOf('jobs', undefined, { function: name }), 'data-link': 'jobs', title: 'jobs of this function' }, name);

  views.functions = listView('functions', {
    title: 'Functions',
    empty: 'No function matches.',
    filters: [{ name: 'search', label: 'Search', kind: 'search', placeholder: 'part of a name' }],
    defaultSort: { sort: 'name', order: 'asc' },
    columns: [
      { key: 'function', label: 'Function', sort: 'name', cell: (f) => fnLink(f.function) },
      { key: 'queued', label: 'Queued', sort: 'queued', num: true, cell: (f) => num(sumPrio(f.queued)) },
      { key: 'by-priority', label: 'High / normal / low', num: true, cell: (f) => prioText(f.queued) },
      { key: 'scheduled', label: 'Scheduled', num: true, cell: (f) => num(f.scheduled) },
      { key: 'running', label: 'Running', sort: 'running', num: true, cell: (f) => num(f.running) },
      { key: 'workers', label: 'Workers', sort: 'workers', num: true, cell: (f) => num(f.workers) },
      { key: 'oldest', label: 'Oldest', sort: 'oldest', num: true, cell: (f) => age(f.oldest_age_seconds) },
      { key: 'max-queue', label: 'Max queue', num: true, cell: (f) => (sumPrio(f.max_queue) ? prioText(f.max_queue) : 'none') },
      { key: 'state', label: 'State', cell: (f) => (f.paused ? 'paused' : 'active') },
      { key: 'limits', label: 'Running / rate limit', num: true, cell: (f) => `${f.max_running || '-'} / ${f.rate_per_sec ? f.rate_per_sec + '/s' : '-'}` },
    ],
    rowAttrs: (f) => ({ 'data-function': f.function }),
    actions: (f, reload) => [
      actionButton('Cancel queued…', { action: 'cancel-queued', function: f.function }, () => cancelQueued(f, reload)),
      actionButton('Max queue…', { action: 'maxqueue', function: f.function }, () => setMaxQueue(f, reload)),
      actionButton(f.paused ? 'Resume…' : 'Pause…', { action: f.paused ? 'resume' : 'pause', function: f.function }, () => pauseFunction(f, reload)),
      actionButton('Run limits…', { action: 'limits', function: f.function }, () => setRunLimits(f, reload)),
      actionButton('Drop…', { action: 'drop', function: f.function }, () => dropFunction(f, reload)),
    ],
  });

  // A worker can serve thousands of functions: the cell lists the first few.
  function functionList(fs) {
    fs = fs || [];
    const shown = fs.slice(0, 8).join(', ');
    return fs.length > 8 ? `${shown} … (+${num(fs.length - 8)})` : shown;
  }

  views.workers = listView('workers', {
    title: 'Workers',
    empty: 'No worker matches.',
    filters: [{ name: 'search', label: 'Search', kind: 'search', placeholder: 'address, id or function' }],
    columns: [
      { key: 'fd', label: 'FD', num: true, cell: (w) => w.fd },
      { key: 'ip', label: 'Address', cell: (w) => w.ip },
      { key: 'id', label: 'ID', cell: (w) => w.id || w.client_id || '' },
      { key: 'functions', label: 'Functions', cell: (w) => functionList(w.functions) },
      { key: 'sleeping', label: 'Sleeping', cell: (w) => (w.sleeping ? 'yes' : 'no') },
      { key: 'running', label: 'Running', num: true, cell: (w) => num(w.running || 0) },
    ],
    rowAttrs: (w) => ({ 'data-fd': w.fd }),
  });

  const jobLink = (h) => el('a', { href: hashOf('jobs', h), 'data-link': 'job' }, h);

  views.jobs = listView('jobs', {
    title: 'Jobs',
    empty: 'No unfinished job matches.',
    filters: [
      { name: 'function', label: 'Function', kind: 'exact', placeholder: 'exact name' },
      { name: 'state', label: 'State', kind: 'select', options: ['queued', 'running', 'scheduled', 'persisting'] },
      { name: 'priority', label: 'Priority', kind: 'select', options: ['high', 'normal', 'low'] },
    ],
    columns: [
      { key: 'handle', label: 'Handle', cell: (j) => jobLink(j.handle) },
      { key: 'function', label: 'Function', cell: (j) => fnLink(j.function || '') },
      { key: 'unique', label: 'Unique', cell: (j) => j.unique || '' },
      { key: 'priority', label: 'Priority', cell: (j) => j.priority || '' },
      { key: 'state', label: 'State', cell: (j) => j.state || '' },
      { key: 'background', label: 'Background', cell: (j) => (j.background ? 'yes' : 'no') },
      { key: 'clients', label: 'Clients', num: true, cell: (j) => num(j.clients || 0) },
      { key: 'size', label: 'Size', num: true, cell: (j) => num(j.size || 0) },
      { key: 'retries', label: 'Retries', num: true, cell: (j) => num(j.retries || 0) },
      { key: 'preview', label: 'Preview', cell: (j) => el('code', { class: 'preview', text: j.preview || '' }) },
    ],
    rowAttrs: (j) => ({ 'data-handle': j.handle }),
    actions: (j, reload) => [actionButton('Cancel…', { action: 'cancel', handle: j.handle }, () => cancelJob(j, reload))],
  });

  // ---- the dead set: background jobs that failed their last attempt

  function deadAction(d, verb, done) {
    confirmAction({
      title: verb === 'retry' ? 'Retry this dead job?' : 'Delete this dead job?',
      body: [
        el('p', {}, verb === 'retry' ? 'Submit ' : 'Forget ', el('code', { text: d.handle }), ' of ',
          el('code', { text: d.function }), verb === 'retry' ? ' again, as a new background job with fresh attempts.' : ' for good.'),
      ],
      ok: verb === 'retry' ? 'Retry' : 'Delete',
      run: async () => {
        await post(`dead/${enc(d.handle)}/${verb}`);
        return `${verb === 'retry' ? 'Submitted again' : 'Deleted'}: ${d.handle}.`;
      },
      done,
    });
  }

  const lastError = (d) => {
    const a = d.attempts || [];
    return a.length ? a[a.length - 1].error : '';
  };

  views.dead = listView('dead', {
    title: 'Dead jobs',
    empty: 'No dead job: nothing failed its last attempt (or no function has a retry policy).',
    filters: [{ name: 'function', label: 'Function', kind: 'exact', placeholder: 'exact name' }],
    columns: [
      { key: 'handle', label: 'Handle', cell: (d) => d.handle },
      { key: 'function', label: 'Function', cell: (d) => d.function },
      { key: 'attempts', label: 'Attempts', num: true, cell: (d) => num((d.attempts || []).length) },
      { key: 'died', label: 'Died', cell: (d) => d.died },
      { key: 'error', label: 'Last error', cell: lastError },
      { key: 'preview', label: 'Data', cell: (d) => `${d.preview} (${num(d.size)} B)` },
    ],
    rowAttrs: (d) => ({ 'data-handle': d.handle }),
    actions: (d, reload) => [
      actionButton('Retry…', { action: 'dead-retry', handle: d.handle }, () => deadAction(d, 'retry', reload)),
      actionButton('Delete…', { action: 'dead-delete', handle: d.handle }, () => deadAction(d, 'delete', reload)),
    ],
  });

  // ---- named schedules (few: the server lists them whole)

  const unixTime = (u) => (u ? new Date(u * 1000).toISOString().replace('.000Z', 'Z') : '-');

  function removeSchedule(sc, done) {
    confirmAction({
      title: 'Remove this schedule?',
      body: [el('p', {}, 'Stop ', el('code', { text: sc.name }), ' from submitting jobs of ', el('code', { text: sc.function }), '.')],
      ok: 'Remove',
      run: async () => {
        await post(`schedules/${enc(sc.name)}/delete`);
        return `Removed schedule ${sc.name}.`;
      },
      done,
    });
  }

  function addSchedule(done) {
    const fields = {
      name: el('input', { id: 'schedule-name', required: true }),
      function: el('input', { id: 'schedule-function', required: true }),
      spec: el('input', { id: 'schedule-spec', placeholder: 'MIN HOUR DOM MON DOW, or @daily', required: true }),
      time_zone: el('input', { id: 'schedule-zone', placeholder: 'UTC' }),
      data: el('input', { id: 'schedule-data' }),
    };
    confirmAction({
      title: 'Add a schedule?',
      body: [el('div', { class: 'fields' }, Object.entries(fields).map(([k, input]) => el('label', {}, k.replace('_', ' ') + ' ', input)))],
      ok: 'Add',
      run: async () => {
        const body = {};
        for (const [k, input] of Object.entries(fields)) body[k] = input.value.trim();
        if (!body.name || !body.function || !body.spec) throw new InvalidInput('name, function and spec are needed');
        await post('schedules', body);
        return `Added schedule ${body.name}.`;
      },
      done,
    });
  }

  views.schedules = (main) => {
    const box = el('div', { class: 'table-box' });
    const tools = el('div', { class: 'toolbar' });
    main.replaceChildren(el('h1', {}, 'Schedules'), tools, box);
    let inner;
    const reload = () => inner.load();
    if (session.canAct) tools.append(actionButton('Add a schedule…', { action: 'schedule-add' }, () => addSchedule(reload)));
    const render = (list, err) => {
      if (err) return box.replaceChildren(errorLine(err));
      if (!list || list.length === 0) return box.replaceChildren(el('p', { class: 'muted' }, 'No schedule.'));
      const head = ['Name', 'Function', 'Spec', 'Zone', 'Next', 'Last', 'Fired'].map((h) => el('th', {}, h));
      if (session.canAct) head.push(el('th', {}, 'Actions'));
      const rows = list.map((sc) => el('tr', { 'data-schedule': sc.name },
        el('td', {}, sc.name), el('td', {}, sc.function), el('td', {}, sc.spec), el('td', {}, sc.time_zone || 'UTC'),
        el('td', {}, unixTime(sc.next_unix)), el('td', {}, unixTime(sc.last_fired_unix)), el('td', { class: 'num' }, num(sc.fired || 0)),
        session.canAct ? el('td', {}, actionButton('Remove…', { action: 'schedule-remove', schedule: sc.name }, () => removeSchedule(sc, reload))) : ''));
      box.replaceChildren(el('table', { id: 'schedules-table' }, el('thead', {}, el('tr', {}, head)), el('tbody', {}, rows)));
    };
    inner = loader(main, () => get('schedules'), render);
    return { load: () => inner.load(), stop: () => inner.stop() };
  };

  // ---- one job

  const JOB_FIELDS = ['handle', 'function', 'unique', 'priority', 'state', 'background', 'clients', 'size', 'retries', 'preview'];

  function jobView(main, handle) {
    return loader(main, () => get('jobs/' + enc(handle)), (job, err) => {
      const head = [el('h1', {}, 'Job ', el('code', { text: handle })),
        el('p', {}, el('a', { href: '#/jobs' }, '← all jobs'), ' ', el('button', { type: 'button', id: 'refresh', onclick: () => current.view.load({}) }, 'Refresh'))];
      if (err && err.status === 404) {
        main.replaceChildren(...head, el('p', { id: 'job-gone' }, 'This job is not in the server: it finished, failed or was cancelled.'));
        return;
      }
      if (err) {
        main.replaceChildren(...head, errorLine(err));
        return;
      }
      const keys = JOB_FIELDS.concat(Object.keys(job).filter((k) => !JOB_FIELDS.includes(k)));
      const dl = el('dl', { id: 'job', 'data-handle': job.handle }, keys.filter((k) => k in job).map((k) => {
        let v = job[k];
        if (k === 'function') v = fnLink(v);
        else if (typeof v === 'boolean') v = v ? 'yes' : 'no';
        else if (typeof v === 'number') v = num(v);
        else if (typeof v !== 'string') v = JSON.stringify(v);
        return [el('dt', {}, k), el('dd', { 'data-field': k }, k === 'preview' ? el('code', { class: 'preview', text: v }) : v)];
      }));
      main.replaceChildren(...head, dl, session.canAct
        ? el('p', {}, actionButton('Cancel job…', { action: 'cancel', handle: job.handle }, () => cancelJob(job, () => current.view.load({}))))
        : '');
    });
  }

  // ---- overview: summary, charts, the deepest queues; every 2 s while the tab is visible

  views.overview = (main) => {
    const cards = el('dl', { class: 'cards', id: 'summary' });
    const charts = {
      throughput: chartBox('chart-throughput', 'Throughput, jobs/s', [
        { key: 'completed', label: 'completed/s' }, { key: 'submitted', label: 'submitted/s' }, { key: 'failed', label: 'failed/s' }]),
      depth: chartBox('chart-depth', 'Queue depth', [{ key: 'queued', label: 'queued' }, { key: 'running', label: 'running' }]),
    };
    const top = el('div', { id: 'top-functions' });
    const historyError = el('p', { class: 'error', hidden: true });
    main.replaceChildren(
      el('h1', {}, 'Overview'), cards,
      el('div', { class: 'charts' }, charts.throughput.box, charts.depth.box), historyError,
      el('h2', {}, 'Deepest queues ', el('a', { class: 'small', href: hashOf('functions', undefined, { sort: 'queued', order: 'desc' }) }, 'all functions →')), top);

    let lastHistory = null;
    const redraw = () => {
      if (!lastHistory) return;
      const s = historySeries(lastHistory);
      charts.throughput.draw(s.t0, s.t1, s.rates, (v) => compact(v) + '/s');
      charts.depth.draw(s.t0, s.t1, s.depth, (v) => compact(v));
    };

    const fetcher = () => Promise.allSettled([get('server'), get('history'), get(`functions${query({ sort: 'queued', order: 'desc', limit: 10 })}`)]);
    const render = ([info, hist, fns]) => {
      if (info.status === 'fulfilled') renderSummary(cards, info.value);
      else cards.replaceChildren(errorLine(info.reason));
      if (hist.status === 'fulfilled') {
        lastHistory = hist.value;
        historyError.hidden = true;
        redraw();
      } else {
        lastHistory = { samples: [] };
        redraw();
        historyError.hidden = false;
        historyError.textContent = 'History: ' + hist.reason.message;
      }
      if (fns.status === 'fulfilled') renderTop(top, fns.value);
      else top.replaceChildren(errorLine(fns.reason));
      schedule();
    };
    const inner = loader(main, fetcher, render);
    let timer = null;
    let stopped = false;
    function schedule() {
      clearTimeout(timer);
      if (!stopped && !document.hidden) timer = setTimeout(() => inner.load(), 2000);
    }
    const onVisible = () => {
      if (!document.hidden) inner.load();
    };
    document.addEventListener('visibilitychange', onVisible);
    window.addEventListener('resize', redraw);
    return {
      load: () => inner.load(),
      stop() {
        stopped = true;
        inner.stop();
        clearTimeout(timer);
        document.removeEventListener('visibilitychange', onVisible);
        window.removeEventListener('resize', redraw);
      },
    };
  };

  function renderSummary(cards, s) {
    const items = [['Version', s.version], ['Functions', num(s.functions)], ['Jobs', num(s.jobs)], ['Running', num(s.running)],
      ['Workers', num(s.workers)], ['Connections', num(s.connections)]];
    if (s.draining) items.push(['State', 'draining']);
    cards.replaceChildren(...items.map(([k, v]) => el('div', { 'data-field': k.toLowerCase() }, el('dt', {}, k), el('dd', {}, v))));
  }

  function renderTop(box, data) {
    const fs = (data && data.functions) || [];
    if (fs.length === 0) {
      box.replaceChildren(el('p', { class: 'muted' }, 'No functions.'));
      return;
    }
    box.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Function'), el('th', { class: 'num' }, 'Queued'), el('th', { class: 'num' }, 'Running'),
        el('th', { class: 'num' }, 'Workers'), el('th', { class: 'num' }, 'Oldest'))),
      el('tbody', {}, fs.map((f) => el('tr', { 'data-function': f.function },
        el('td', {}, fnLink(f.function)), el('td', { class: 'num', 'data-col': 'queued' }, num(sumPrio(f.queued))),
        el('td', { class: 'num' }, num(f.running)), el('td', { class: 'num' }, num(f.workers)),
        el('td', { class: 'num' }, age(f.oldest_age_seconds)))))));
  }

  // historySeries turns the samples (cumulative counters, gauges) into lines: rates are the
  // deltas of the counters over the deltas of time; a counter going down (a restart) is a gap.
  function historySeries(h) {
    const ss = ((h && h.samples) || []).filter((s) => typeof s.time === 'number').sort((a, b) => a.time - b.time);
    const rates = { completed: [], submitted: [], failed: [] };
    const depth = { queued: [], running: [] };
    for (let i = 0; i < ss.length; i++) {
      const s = ss[i];
      depth.queued.push([s.time, s.queued || 0]);
      depth.running.push([s.time, s.running || 0]);
      if (i === 0) continue;
      const p = ss[i - 1];
      const dt = s.time - p.time;
      for (const k of Object.keys(rates)) {
        const d = (s[k] || 0) - (p[k] || 0);
        rates[k].push(dt > 0 && d >= 0 ? [s.time, d / dt] : null);
      }
    }
    const t1 = ss.length ? ss[ss.length - 1].time : Date.now() / 1000;
    const t0 = Math.min(ss.length ? ss[0].time : t1, t1 - 60);
    return { t0, t1, rates, depth };
  }

  // ---- charts: a canvas per chart, lines drawn by hand, colours from the style sheet

  function chartBox(id, title, series) {
    const canvas = el('canvas', { id, role: 'img', 'aria-label': title, height: '180' });
    const legend = el('ul', { class: 'legend' });
    const box = el('section', { class: 'chart' }, el('h2', {}, title), canvas, legend);
    return {
      box,
      draw(t0, t1, data, fmt) {
        const lines = series.map((s, i) => ({ ...s, cls: `s${i + 1}`, points: data[s.key] || [] }));
        drawChart(canvas, t0, t1, lines, fmt);
        legend.replaceChildren(...lines.map((l) => {
          const lastPoint = l.points.filter(Boolean).pop();
          return el('li', { 'data-series': l.key }, el('span', { class: `swatch ${l.cls}` }), `${l.label} `,
            el('strong', {}, lastPoint ? fmt(lastPoint[1]) : '—'));
        }));
        const now = lines.map((l) => {
          const lp = l.points.filter(Boolean).pop();
          return `${l.label} ${lp ? fmt(lp[1]) : 'none'}`;
        });
        canvas.setAttribute('aria-label', `${title}: ${now.join(', ')}`);
      },
    };
  }

  // niceCeil rounds up to 1, 2 or 5 times a power of ten.
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function drawChart(canvas, t0, t1, lines, fmt) {
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim() || '#888';
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 400;
    const h = canvas.clientHeight || 180;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const pad = { l: 56, r: 12, t: 10, b: 24 };
    const pw = w - pad.l - pad.r;
    const ph = h - pad.t - pad.b;
    let max = 0;
    for (const l of lines) for (const p of l.points) if (p && p[1] > max) max = p[1];
    const top = niceCeil(max);
    const x = (t) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * pw;
    const y = (v) => pad.t + ph - (v / top) * ph;

    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = color('--grid');
    ctx.fillStyle = color('--muted');
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.l, yy);
      ctx.lineTo(w - pad.r, yy);
      ctx.stroke();
      ctx.fillText(fmt(v), pad.l - 6, yy);
    }
    // A time label every 30 s to 5 min, as the span asks, in local time.
    const span = t1 - t0;
    const step = span > 1200 ? 300 : span > 480 ? 120 : span > 180 ? 60 : 30;
    const two = (n) => String(n).padStart(2, '0');
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const d = new Date(t * 1000);
      const label = `${two(d.getHours())}:${two(d.getMinutes())}` + (step < 60 ? `:${two(d.getSeconds())}` : '');
      ctx.fillText(label, x(t), h - pad.b + 6);
    }
    let any = false;
    for (const l of lines) {
      ctx.strokeStyle = color('--' + l.cls);
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      let pen = false;
      for (const p of l.points) {
        if (!p) {
          pen = false;
          continue;
        }
        any = true;
        if (pen) ctx.lineTo(x(p[0]), y(p[1]));
        else ctx.moveTo(x(p[0]), y(p[1]));
        pen = true;
      }
      ctx.stroke();
    }
    if (!any) {
      ctx.fillStyle = color('--muted');
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('no samples yet', pad.l + pw / 2, pad.t + ph / 2);
    }
  }

  // ---- start

  async function start() {
    await loadSession();
    window.addEventListener('hashchange', route);
    route();
  }
  start();
})();
