/*
 * The Elevate demo web chat (sandbox/webchat.py serves it).
 *
 * A client of the sandbox's control API only: it types as the chosen person
 * (/_sandbox/slack/command, /_sandbox/teams/send), clicks buttons (/_sandbox/slack/action,
 * Teams invokes), submits Slack modals (/_sandbox/slack/view_submission) and reads what the bot
 * sent (/_sandbox/slack/messages, /_sandbox/slack/views, /_sandbox/teams/activities), again
 * after every server-sent "change" event.
 *
 * Safety: every text from a message is escaped before any formatting is applied; markup comes
 * only from this file.  Links go through /_sandbox/chat/open and only http(s) links are made.
 */
(function () {
  'use strict';

  const API = '/_sandbox';
  const CHAT = '/_sandbox/chat';
  const AC_TYPE = 'application/vnd.microsoft.card.adaptive';
  const THREAD = ';messageid=';
  const $ = (id) => document.getElementById(id);

  const S = {
    world: null,
    platform: 'teams',
    person: null,
    view: 'dm',
    data: { slack: null, teams: null },
    overrides: {}, // Teams invoke-response cards, per person and activity
    own: {}, // what each person typed, per platform and conversation
    seen: {}, // unread counts
    refreshing: false,
    again: false,
    renderedView: '',
    modalBusy: false,
    seq: 0,
  };

  // --- small helpers -----------------------------------------------------------------------

  const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function esc(text) {
    return String(text == null ? '' : text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  }

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'html') node.innerHTML = value; // only markup built here from esc()'d text
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // An absolute http(s) URL, or null: relative, javascript:, data: … never become links.
  function safeUrl(url) {
    try {
      const parsed = new URL(String(url));
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function openHref(url) {
    return CHAT + '/open?url=' + encodeURIComponent(url);
  }

  function openLink(url) {
    const safe = safeUrl(url);
    if (!safe) {
      toast('That link cannot be opened from the demo.', 'error');
      return;
    }
    window.open(openHref(safe), '_blank', 'noopener');
  }

  function linkHtml(url, labelHtml) {
    return '<a href="' + esc(openHref(url)) + '" target="_blank" rel="noopener noreferrer">' +
      labelHtml + '</a>';
  }

  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      return { ok: false, status: 0, data: { error: 'the sandbox is not answering' } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function errorText(data) {
    if (!data) return '';
    const err = data.error;
    if (typeof err === 'string') return err;
    if (err && typeof err.message === 'string') return err.message;
    return '';
  }

  function toast(text, kind) {
    const node = h('div', { class: 'toast ' + (kind || 'info'), role: 'status', text });
    $('toasts').append(node);
    setTimeout(() => node.remove(), kind === 'error' ? 9000 : 5000);
  }

  function timeOf(date) {
    if (!date || isNaN(date.getTime())) return '';
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function store(name, value) {
    try {
      sessionStorage.setItem('elevate-demo:' + S.world.session + ':' + name, JSON.stringify(value));
    } catch (e) { /* private mode: keep it in memory */ }
  }

  function load(name) {
    try {
      return JSON.parse(sessionStorage.getItem('elevate-demo:' + S.world.session + ':' + name)) || {};
    } catch (e) {
      return {};
    }
  }

  // --- text formatting (escape first, then format) -------------------------------------------

  function slots() {
    const list = [];
    return {
      put(html) {
        list.push(html);
        return '\u0000' + (list.length - 1) + '\u0000';
      },
      fill(text) {
        for (let i = 0; i < 8 && text.indexOf('\u0000') >= 0; i++) {
          text = text.replace(/\u0000(\d+)\u0000/g, (_, n) => list[Number(n)]);
        }
        return text;
      },
    };
  }

  // Bold, italic and strike-through on already escaped text.
  function emphasis(text, single) {
    let out = text
      .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
      .replace(/~~(?=\S)([^~\n]*?\S)~~/g, '<del>$1</del>');
    out = out.replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])/g,
      single === 'slack' ? '$1<strong>$2</strong>' : '$1<em>$2</em>');
    out = out.replace(/(^|[^\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])/g, '$1<em>$2</em>');
    if (single === 'slack') out = out.replace(/(^|[^\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])/g, '$1<del>$2</del>');
    return out;
  }

  // Markdown as Teams shows it in messages and Adaptive Card TextBlocks.
  function teamsMarkdown(source) {
    const sl = slots();
    let text = String(source == null ? '' : source).replace(/\u0000/g, '').replace(/\r\n?/g, '\n');
    text = text.replace(/`([^`\n]+)`/g, (_, code) => sl.put('<code>' + esc(code) + '</code>'));
    text = text.replace(/\\([!-/:-@[-`{-~])/g, (_, ch) => sl.put(esc(ch)));
    text = text.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (whole, label, url) => {
      const safe = safeUrl(url);
      return safe ? sl.put(linkHtml(safe, emphasis(esc(label)))) : whole;
    });
    text = emphasis(esc(text));
    const html = [];
    let list = null;
    let para = [];
    const flush = () => {
      if (para.length) html.push('<p>' + para.join('<br>') + '</p>');
      para = [];
    };
    for (const line of text.split('\n')) {
      const bullet = /^\s*[-+*]\s+(.*)$/.exec(line);
      const numbered = /^\s*\d+\.\s+(.*)$/.exec(line);
      const item = bullet || numbered;
      const kind = bullet ? 'ul' : 'ol';
      if (item) {
        flush();
        if (!list || list.kind !== kind) {
          if (list) html.push('</' + list.kind + '>');
          list = { kind };
          html.push('<' + kind + '>');
        }
        html.push('<li>' + item[1] + '</li>');
        continue;
      }
      if (list) {
        html.push('</' + list.kind + '>');
        list = null;
      }
      if (!line.trim()) flush();
      else para.push(line);
    }
    if (list) html.push('</' + list.kind + '>');
    flush();
    return sl.fill(html.join(''));
  }

  function slackName(id) {
    const person = (S.world.people || []).find((p) => p.slack === id);
    return person ? person.name : id;
  }

  // Slack's <…> tokens: links, user and channel mentions, special mentions and dates.
  function slackToken(inner, decode) {
    const bar = inner.indexOf('|');
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? inner.slice(bar + 1) : '';
    if (target.startsWith('@')) {
      return '<span class="mention">@' + esc(decode(label) || slackName(target.slice(1))) + '</span>';
    }
    if (target.startsWith('#')) {
      return '<span class="mention">#' + esc(decode(label) || target.slice(1)) + '</span>';
    }
    if (target.startsWith('!')) {
      if (target.startsWith('!date')) return esc(decode(label));
      return '<span class="mention">@' + esc(target.slice(1).split('^')[0]) + '</span>';
    }
    const url = safeUrl(decode(target));
    const shown = label ? decode(label) : decode(target);
    return url ? linkHtml(url, esc(shown)) : esc(shown);
  }

  // Slack mrkdwn (what apps send is already &amp;/&lt;/&gt;-escaped).
  function slackMrkdwn(source) {
    const sl = slots();
    const decode = (t) => t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    let text = String(source == null ? '' : source).replace(/[\u0000\u0001]/g, '').replace(/\r\n?/g, '\n');
    text = text.replace(/```\n?([\s\S]*?)```/g, (_, code) => sl.put('<pre>' + esc(decode(code)) + '</pre>'));
    text = text.replace(/`([^`\n]+)`/g, (_, code) => sl.put('<code>' + esc(decode(code)) + '</code>'));
    text = text.replace(/<([^<>\n]+)>/g, (_, inner) => sl.put(slackToken(inner, decode)));
    text = text.replace(/^>[ \t]?/gm, '\u0001');
    text = emphasis(esc(decode(text)), 'slack');
    const lines = text.split('\n').map((line) =>
      line.startsWith('\u0001') ? '<span class="quote">' + line.slice(1) + '</span>' : line);
    return sl.fill(lines.join('<br>'));
  }

  function plainHtml(text) {
    return esc(text).replace(/\n/g, '<br>');
  }

  // --- the world: people, channels, views -----------------------------------------------------

  function me() {
    return S.world.people.find((p) => p.upn === S.person) || S.world.people[0];
  }

  function platformInfo() {
    return S.world[S.platform];
  }

  function conversations() {
    const list = [{ id: 'dm', name: 'Elevate', sub: S.platform === 'slack' ? 'app · direct messages' : 'bot · your chat' }];
    for (const c of platformInfo().channels) {
      const sub = c.purpose === 'approver' ? 'approval cards'
        : c.purpose === 'admin' ? 'admin notices' : 'channel';
      list.push({ id: c.id, name: c.name, sub, channel: c });
    }
    return list;
  }

  function viewInfo() {
    return conversations().find((c) => c.id === S.view) || conversations()[0];
  }

  function parseHash() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => {
      try { return decodeURIComponent(p); } catch (e) { return ''; }
    });
    const [platform, person, view] = parts;
    if (platform === 'slack' || platform === 'teams') S.platform = platform;
    if (person && S.world.people.some((p) => p.upn === person)) S.person = person;
    if (!S.person) {
      const requester = S.world.people.find((p) => p.roles.includes('requester'));
      S.person = (requester || S.world.people[0]).upn;
    }
    S.view = view && conversations().some((c) => c.id === view) ? view : 'dm';
  }

  function go(changes) {
    const next = Object.assign({ platform: S.platform, person: S.person, view: S.view }, changes);
    location.hash = '#/' + [next.platform, next.person, next.view].map(encodeURIComponent).join('/');
  }

  // --- what each conversation holds ----------------------------------------------------------

  function teamsRecords(view, upn) {
    const all = (S.data.teams && S.data.teams.activities) || [];
    if (view === 'dm') {
      return all.filter((r) => r.conversationType === 'personal' && r.user === upn);
    }
    return all.filter((r) => String(r.conversation).split(THREAD)[0] === view);
  }

  function slackRecords(view, person) {
    const all = (S.data.slack && S.data.slack.messages) || [];
    return all.filter((m) => {
      if (m.deleted) return false;
      if (view === 'dm') return m.channel_name === 'directmessage' && m.recipient === person.slack;
      return m.channel === view && (!m.ephemeral || m.recipient === person.slack);
    });
  }

  function records(view, person) {
    return S.platform === 'slack' ? slackRecords(view, person) : teamsRecords(view, person.upn);
  }

  function ownKey(upn, view) {
    return S.platform + '|' + upn + '|' + view;
  }

  // --- sidebar -------------------------------------------------------------------------------

  function avatar(person, extra) {
    let hash = 0;
    for (const ch of person.upn) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    return h('span', { class: 'avatar hue-' + (hash % 6) + (extra ? ' ' + extra : ''), 'aria-hidden': 'true' }, person.initials);
  }

  function unread(key, count) {
    return Math.max(0, count - (S.seen[key] || 0));
  }

  function badge(count) {
    return count > 0 ? h('span', { class: 'badge', title: count + ' new' }, String(count)) : null;
  }

  function renderSidebar() {
    document.body.className = S.platform;
    $('tenant').textContent = S.world.domain;
    for (const button of document.querySelectorAll('[data-platform]')) {
      const on = button.dataset.platform === S.platform;
      button.setAttribute('aria-checked', String(on));
      button.classList.toggle('on', on);
      button.disabled = !S.world[button.dataset.platform].available;
    }
    const loaded = !!S.data[S.platform];
    const people = $('people');
    people.replaceChildren(...S.world.people.map((person) => {
      const count = loaded ? records('dm', person).length : 0;
      const current = person.upn === S.person;
      return h('li', {},
        h('button', {
          type: 'button',
          class: 'person' + (current ? ' on' : ''),
          'aria-current': current ? 'true' : null,
          dataset: { upn: person.upn },
          onclick: () => go({ person: person.upn }),
        },
        avatar(person),
        h('span', { class: 'person-text' },
          h('span', { class: 'person-name' }, person.name),
          h('span', { class: 'person-role', title: person.title || null }, person.role)),
        current ? null : badge(unread(S.platform + '|' + person.upn + '|dm', count))));
    }));
    const person = me();
    $('conversations').replaceChildren(...conversations().map((c) => {
      const current = c.id === S.view;
      const count = loaded ? records(c.id, person).length : 0;
      const mark = c.id === 'dm' ? h('span', { class: 'avatar bot tiny' }, 'E') : '#';
      return h('li', {},
        h('button', {
          type: 'button',
          class: 'conversation' + (current ? ' on' : ''),
          'aria-current': current ? 'true' : null,
          dataset: { view: c.id },
          onclick: () => go({ view: c.id }),
        },
        h('span', { class: 'conv-mark', 'aria-hidden': 'true' }, mark),
        h('span', { class: 'conv-text' },
          h('span', { class: 'conv-name' }, c.name),
          h('span', { class: 'conv-sub' }, c.sub)),
        current ? null : badge(unread(S.platform + '|' + person.upn + '|' + c.id, count))));
    }));
  }

  // --- the conversation ----------------------------------------------------------------------

  function chipsFor(person) {
    const slack = S.platform === 'slack';
    const cmd = slack ? S.world.slack.command + ' ' : '';
    if (person.roles.includes('requester') || person.roles.includes('guest')) {
      const list = [cmd + (slack ? '' : 'request-admin ') + '10m fixing the printer', cmd + 'status', cmd + 'cancel', cmd + 'release', cmd + 'help'];
      if (slack) list.splice(1, 0, S.world.slack.command);
      return list;
    }
    return [cmd + 'help', cmd + 'status', cmd + (slack ? '' : 'request-admin ') + '10m installing a tool'];
  }

  function hintFor(person) {
    const slack = S.platform === 'slack';
    const ask = (slack ? S.world.slack.command + ' ' : 'request-admin ') + '10m fixing the printer';
    if (person.roles.includes('guest')) return 'Guests are not allowed to ask. Try ' + ask + ' and see what the bot says.';
    if (person.roles.includes('requester')) return 'Ask for admin rights: ' + ask + '. The bot asks you to sign in once.';
    if (person.roles.includes('approver') || person.roles.includes('fallback approver')) {
      return 'Approval cards arrive here and in the approvals channel. Approve, or Deny with a reason.';
    }
    return 'Notices about grants, denials and expiry go to the admin channel.';
  }

  function renderHead() {
    const person = me();
    const info = viewInfo();
    const slack = S.platform === 'slack';
    if (info.id === 'dm') {
      $('chat-title').textContent = 'Elevate';
      $('chat-sub').textContent = slack
        ? 'Direct messages between ' + person.name + ' and the Elevate app in Slack'
        : 'Chat between ' + person.name + ' and the Elevate bot in Teams';
    } else {
      $('chat-title').textContent = (slack ? '#' : '') + info.name;
      $('chat-sub').textContent = (info.channel.purpose === 'approver'
        ? 'Approval cards for the approvers'
        : info.channel.purpose === 'admin' ? 'Notices for the IT admins' : 'A channel') +
        ', seen by ' + person.name;
    }
    $('whoami').replaceChildren(avatar(person, 'small'),
      h('span', {}, h('strong', {}, person.name), h('span', { class: 'who-role' }, person.role)));
    const dm = info.id === 'dm';
    $('composer').classList.toggle('readonly', !dm);
    const input = $('input');
    input.disabled = !dm;
    $('send').disabled = !dm;
    input.placeholder = dm
      ? (slack ? 'Type ' + S.world.slack.command + ' 10m fixing the printer' : 'Message Elevate, e.g. request-admin 10m fixing the printer')
      : '';
    $('compose-note').textContent = dm
      ? (slack ? 'Slack: messages here are slash commands (' + S.world.slack.command + ' …).' : 'Teams: what you type is sent to the bot as ' + person.name + '.')
      : 'Channel posts come from the bot. Type to the bot in the Elevate conversation.';
    $('chips').replaceChildren(...(dm ? chipsFor(person) : []).map((text) =>
      h('button', { type: 'button', class: 'chip', onclick: () => { input.value = text; input.focus(); } }, text)));
  }

  function emptyState() {
    const info = viewInfo();
    const person = me();
    const text = info.id === 'dm'
      ? hintFor(person)
      : info.channel.purpose === 'approver'
        ? 'Nothing yet. When someone asks for admin rights, the approval card is posted here.'
        : 'Nothing yet. When rights are granted, denied or expire, the bot posts a notice here.';
    return h('div', { class: 'empty' }, h('div', { class: 'empty-title' }, 'No messages yet'), h('div', {}, text));
  }

  function reconcile(container, items) {
    const existing = new Map();
    for (const child of Array.from(container.children)) {
      if (child.dataset.key) existing.set(child.dataset.key, child);
      else child.remove();
    }
    let i = 0;
    for (const item of items) {
      let node = existing.get(item.key);
      if (node) existing.delete(item.key);
      else {
        node = item.build();
        node.dataset.key = item.key;
      }
      const at = container.children[i] || null;
      if (at !== node) container.insertBefore(node, at);
      i++;
    }
    for (const node of existing.values()) node.remove();
  }

  function renderMessages() {
    const container = $('messages');
    const person = me();
    const viewKey = S.platform + '|' + person.upn + '|' + S.view;
    const switched = S.renderedView !== viewKey;
    const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 120;
    const loaded = !!S.data[S.platform];
    const list = loaded ? records(S.view, person) : [];
    const own = S.own[ownKey(person.upn, S.view)] || [];
    const items = [];
    const pushOwn = (index) => {
      for (const entry of own) if (entry.after === index) items.push(ownItem(entry, person));
    };
    list.forEach((record, index) => {
      pushOwn(index);
      items.push(S.platform === 'slack' ? slackItem(record, person) : teamsItem(record, person));
    });
    pushOwn(list.length);
    for (const entry of own) if (entry.after > list.length) items.push(ownItem(entry, person));
    if (!items.length) items.push({ key: 'empty|' + viewKey, build: emptyState });
    reconcile(container, items);
    if (loaded) {
      S.seen[viewKey] = list.length;
      store('seen', S.seen);
    }
    if (switched || nearBottom) container.scrollTop = container.scrollHeight;
    S.renderedView = viewKey;
  }

  function ownItem(entry, person) {
    return {
      key: 'own|' + S.platform + '|' + person.upn + '|' + entry.id + '|' + (entry.error || ''),
      build: () => {
        if (S.platform === 'slack') {
          return h('div', { class: 'msg own slack-own' },
            avatar(person),
            h('div', { class: 'msg-body' },
              h('div', { class: 'msg-meta' }, h('strong', {}, person.name), h('span', { class: 'time' }, timeOf(new Date(entry.at)))),
              h('div', { class: 'slash' }, h('code', {}, entry.text), h('span', { class: 'only-you' }, 'slash command · only you see it')),
              entry.error ? h('div', { class: 'delivery-error' }, entry.error) : null));
        }
        return h('div', { class: 'msg own teams-own' },
          h('div', { class: 'bubble mine' },
            h('div', { class: 'msg-meta' }, h('span', { class: 'time' }, timeOf(new Date(entry.at)))),
            h('div', { class: 'text' }, entry.text)),
          entry.error ? h('div', { class: 'delivery-error' }, entry.error) : null);
      },
    };
  }

  function botMeta(date, extra) {
    return h('div', { class: 'msg-meta' },
      h('strong', {}, 'Elevate'),
      S.platform === 'slack' ? h('span', { class: 'app-tag' }, 'APP') : null,
      h('span', { class: 'time' }, timeOf(date)),
      extra);
  }

  function botAvatar() {
    return h('span', { class: 'avatar bot', 'aria-hidden': 'true' }, 'E');
  }

  // --- Slack: Block Kit -----------------------------------------------------------------------

  function textObject(obj) {
    if (!obj) return '';
    return obj.type === 'mrkdwn' ? slackMrkdwn(obj.text) : plainHtml(obj.text);
  }

  function slackButton(element, onClick) {
    const style = element.style === 'primary' ? ' primary' : element.style === 'danger' ? ' danger' : '';
    return h('button', {
      type: 'button',
      class: 'sk-button' + style,
      dataset: { actionId: element.action_id || '' },
      html: plainHtml(element.text && element.text.text),
      onclick: onClick ? (event) => onClick(element, event.currentTarget) : null,
      disabled: onClick ? null : true,
    });
  }

  function slackElement(element, onButton) {
    if (element.type === 'button') return slackButton(element, onButton);
    if (element.type === 'image') return h('span', { class: 'sk-image' }, '[' + (element.alt_text || 'image') + ']');
    if (element.type === 'mrkdwn' || element.type === 'plain_text') return h('span', { html: textObject(element) });
    const placeholder = element.placeholder ? element.placeholder.text : element.type;
    return h('span', { class: 'sk-unsupported' }, placeholder);
  }

  function richText(block) {
    const parts = [];
    const walk = (node) => {
      if (!node) return;
      if (node.type === 'text') parts.push(node.text || '');
      else if (node.type === 'link') parts.push(node.text || node.url || '');
      else if (node.type === 'user') parts.push('@' + slackName(node.user_id));
      else if (Array.isArray(node.elements)) node.elements.forEach(walk);
    };
    walk(block);
    return plainHtml(parts.join(''));
  }

  function slackBlocks(blocks, onButton) {
    const out = [];
    for (const block of blocks || []) {
      switch (block.type) {
        case 'header':
          out.push(h('div', { class: 'sk-header', html: textObject(block.text) }));
          break;
        case 'section': {
          const body = h('div', { class: 'sk-section-body' });
          if (block.text) body.append(h('div', { class: 'sk-text', html: textObject(block.text) }));
          if (block.fields && block.fields.length) {
            body.append(h('div', { class: 'sk-fields' },
              block.fields.map((f) => h('div', { class: 'sk-field', html: textObject(f) }))));
          }
          out.push(h('div', { class: 'sk-section' }, body,
            block.accessory ? h('div', { class: 'sk-accessory' }, slackElement(block.accessory, onButton)) : null));
          break;
        }
        case 'context':
          out.push(h('div', { class: 'sk-context' }, (block.elements || []).map((e) => slackElement(e, null))));
          break;
        case 'divider':
          out.push(h('hr', { class: 'sk-divider' }));
          break;
        case 'actions':
          out.push(h('div', { class: 'sk-actions' }, (block.elements || []).map((e) => slackElement(e, onButton))));
          break;
        case 'image':
          out.push(h('div', { class: 'sk-image' }, '[' + (block.alt_text || 'image') + ']'));
          break;
        case 'rich_text':
          out.push(h('div', { class: 'sk-text', html: richText(block) }));
          break;
        case 'input':
          out.push(h('div', { class: 'sk-context' }, 'Form field: ' + ((block.label && block.label.text) || '')));
          break;
        default:
          break;
      }
    }
    return out;
  }

  function slackItem(message, person) {
    const key = ['slack', person.upn, message.channel, message.ts, message.versions].join('|');
    return {
      key,
      build: () => {
        const onButton = (element, button) => slackClick(message, element, button);
        const blocks = slackBlocks(message.blocks, onButton);
        const content = blocks.length ? blocks : [h('div', { class: 'sk-text', html: slackMrkdwn(message.text) })];
        return h('div', { class: 'msg bot slack-msg' + (message.ephemeral ? ' ephemeral' : '') },
          botAvatar(),
          h('div', { class: 'msg-body' },
            botMeta(new Date(Number(message.ts) * 1000), message.updated ? h('span', { class: 'edited' }, '(edited)') : null),
            h('div', { class: 'blocks' }, content),
            message.ephemeral ? h('div', { class: 'only-you' }, 'Only visible to you') : null));
      },
    };
  }

  async function slackClick(message, element, button) {
    if (element.url) openLink(element.url); // Slack opens the link and also tells the app
    button.classList.add('busy');
    const body = {
      user: S.person,
      channel: message.channel,
      ts: message.ts,
      action_id: element.action_id,
    };
    if (element.value !== undefined) body.value = element.value;
    const result = await api('POST', API + '/slack/action', body);
    button.classList.remove('busy');
    if (!result.ok) toast('The click did not reach the bot: ' + (errorText(result.data) || 'HTTP ' + result.status), 'error');
    else if (result.data && result.data.status >= 400) toast('The bot answered HTTP ' + result.data.status + '.', 'error');
    schedule();
  }

  // --- Slack: modals ----------------------------------------------------------------------------

  function openSlackView() {
    if (S.platform !== 'slack' || !S.data.slack) return null;
    const person = me();
    const open = (S.data.slack.views || []).filter((v) => v.open && v.user === person.slack);
    return open.length ? open[open.length - 1] : null;
  }

  function inputControl(block, id) {
    const element = block.element || {};
    if (element.type === 'plain_text_input') {
      const attrs = {
        id,
        class: 'sk-control',
        placeholder: element.placeholder ? element.placeholder.text : null,
        maxlength: element.max_length || null,
        minlength: element.min_length || null,
      };
      const control = element.multiline ? h('textarea', Object.assign({ rows: 4 }, attrs)) : h('input', Object.assign({ type: 'text' }, attrs));
      control.value = element.initial_value || '';
      return control;
    }
    if (element.type === 'static_select') {
      const options = (element.options || []).concat(...(element.option_groups || []).map((g) => g.options || []));
      const select = h('select', { id, class: 'sk-control' },
        h('option', { value: '' }, element.placeholder ? element.placeholder.text : 'Choose…'),
        options.map((o, i) => h('option', { value: String(i) }, o.text ? o.text.text : o.value)));
      const initial = element.initial_option ? options.findIndex((o) => o.value === element.initial_option.value) : -1;
      select.value = initial >= 0 ? String(initial) : '';
      select._options = options;
      return select;
    }
    return h('div', { class: 'sk-unsupported' }, 'This demo cannot show a ' + element.type + ' field.');
  }

  function modalBlocks(view) {
    const out = [];
    (view.blocks || []).forEach((block, index) => {
      if (block.type !== 'input') {
        out.push(...slackBlocks([block], null));
        return;
      }
      const id = 'modal-input-' + index;
      const label = (block.label && block.label.text) || '';
      out.push(h('div', {
        class: 'sk-input',
        dataset: { block: block.block_id || '', action: (block.element && block.element.action_id) || '', type: (block.element && block.element.type) || '', optional: block.optional ? '1' : '' },
      },
      h('label', { for: id }, label, block.optional ? h('span', { class: 'optional' }, ' (optional)') : null),
      inputControl(block, id),
      block.hint ? h('div', { class: 'sk-hint' }, block.hint.text) : null,
      h('div', { class: 'sk-error', hidden: true })));
    });
    return out;
  }

  function modalValues(form) {
    const values = {};
    let missing = false;
    for (const field of form.querySelectorAll('.sk-input')) {
      const { block, action, type, optional } = field.dataset;
      const control = field.querySelector('.sk-control');
      const error = field.querySelector('.sk-error');
      error.hidden = true;
      if (!control) continue;
      let value;
      let empty;
      if (type === 'static_select') {
        const chosen = control.value === '' ? null : control._options[Number(control.value)];
        value = { type, selected_option: chosen || null };
        empty = !chosen;
      } else {
        const text = control.value;
        value = { type, value: text === '' ? null : text };
        empty = !text.trim();
      }
      if (empty && !optional) {
        error.textContent = 'Please complete this required field.';
        error.hidden = false;
        missing = true;
      }
      values[block] = { [action]: value };
    }
    return missing ? null : values;
  }

  function showModalErrors(form, errors) {
    for (const field of form.querySelectorAll('.sk-input')) {
      const message = errors[field.dataset.block];
      const error = field.querySelector('.sk-error');
      error.hidden = !message;
      error.textContent = message || '';
    }
  }

  function renderModal() {
    const dialog = $('modal');
    const view = openSlackView();
    if (!view) {
      if (dialog.open) dialog.close();
      dialog.dataset.key = '';
      return;
    }
    const key = S.person + '|' + view.id + '|' + view.hash;
    if (dialog.open && dialog.dataset.key === key) return;
    dialog.dataset.key = key;
    const title = (view.title && view.title.text) || 'Elevate';
    const form = h('form', { class: 'modal-form', method: 'dialog', novalidate: true });
    const submit = view.submit
      ? h('button', { type: 'submit', class: 'btn primary', dataset: { role: 'submit' } }, view.submit.text)
      : null;
    const closeText = (view.close && view.close.text) || (submit ? 'Cancel' : 'Close');
    const close = async () => {
      dialog.dataset.key = '';
      dialog.close();
      await api('POST', API + '/slack/view_closed', { user: S.person, view_id: view.id });
      schedule();
    };
    form.append(
      h('header', { class: 'modal-head' },
        h('span', { class: 'avatar bot small', 'aria-hidden': 'true' }, 'E'),
        h('h2', { id: 'modal-title' }, title),
        h('button', { type: 'button', class: 'modal-x', 'aria-label': 'Close', onclick: close }, '×')),
      h('div', { class: 'modal-body' }, modalBlocks(view)),
      h('footer', { class: 'modal-foot' },
        h('button', { type: 'button', class: 'btn', onclick: close }, closeText),
        submit));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!submit || S.modalBusy) return;
      const values = modalValues(form);
      if (!values) return;
      S.modalBusy = true;
      submit.disabled = true;
      submit.textContent = 'Sending…';
      const result = await api('POST', API + '/slack/view_submission', { user: S.person, view_id: view.id, values });
      S.modalBusy = false;
      submit.disabled = false;
      submit.textContent = view.submit.text;
      if (!result.ok) {
        toast('The form did not reach the bot: ' + (errorText(result.data) || 'HTTP ' + result.status), 'error');
      } else if (result.data.errors) {
        showModalErrors(form, result.data.errors);
      } else if (result.data.view === null) {
        dialog.dataset.key = '';
        dialog.close();
      }
      schedule();
    });
    dialog.replaceChildren(form);
    dialog.oncancel = (event) => {
      event.preventDefault();
      close();
    };
    if (!dialog.open) dialog.showModal();
    const first = form.querySelector('.sk-control');
    if (first) first.focus();
  }

  // --- Teams: Adaptive Cards ------------------------------------------------------------------

  const COLORS = {
    default: { default: '#242424', subtle: '#616161' },
    dark: { default: '#242424', subtle: '#616161' },
    light: { default: '#ffffff', subtle: '#f0f0f0' },
    accent: { default: '#4f52b2', subtle: '#6264a7' },
    good: { default: '#0e700e', subtle: '#107c10' },
    warning: { default: '#835c00', subtle: '#986f0b' },
    attention: { default: '#c4314b', subtle: '#d13438' },
  };

  let hostConfig = null;
  function cardHostConfig() {
    if (!hostConfig) {
      hostConfig = new AdaptiveCards.HostConfig({
        fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
        supportsInteractivity: true,
        spacing: { small: 4, default: 8, medium: 16, large: 24, extraLarge: 32, padding: 16 },
        separator: { lineThickness: 1, lineColor: '#e0e0e0' },
        fontSizes: { small: 12, default: 14, medium: 16, large: 20, extraLarge: 24 },
        fontWeights: { lighter: 300, default: 400, bolder: 600 },
        containerStyles: {
          default: { backgroundColor: '#ffffff', foregroundColors: COLORS },
          emphasis: { backgroundColor: '#f5f5f5', foregroundColors: COLORS },
          accent: { backgroundColor: '#e8ebfa', foregroundColors: COLORS },
          good: { backgroundColor: '#e7f4e4', foregroundColors: COLORS },
          attention: { backgroundColor: '#fcf4f6', foregroundColors: COLORS },
          warning: { backgroundColor: '#fbf6d9', foregroundColors: COLORS },
        },
        actions: {
          maxActions: 6,
          spacing: 'default',
          buttonSpacing: 0, // the gap comes from app.css, so that buttons can wrap
          showCard: { actionMode: 'inline', inlineTopMargin: 12 },
          actionsOrientation: 'horizontal',
          actionAlignment: 'left',
        },
        factSet: {
          title: { color: 'default', size: 'default', isSubtle: true, weight: 'default', wrap: true, maxWidth: 160 },
          value: { color: 'default', size: 'default', isSubtle: false, weight: 'default', wrap: true },
          spacing: 8,
        },
      });
      AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {
        result.outputHtml = teamsMarkdown(text);
        result.didProcess = true;
      };
    }
    return hostConfig;
  }

  function renderCard(json, onAction) {
    if (typeof AdaptiveCards === 'undefined') {
      return h('div', { class: 'card-error' }, 'The Adaptive Cards renderer did not load.');
    }
    try {
      const card = new AdaptiveCards.AdaptiveCard();
      card.hostConfig = cardHostConfig();
      card.onExecuteAction = onAction;
      card.parse(json);
      const node = card.render();
      if (node) return h('div', { class: 'card' }, node);
    } catch (e) {
      console.error('card', e);
    }
    return h('div', { class: 'card-error' }, 'This card could not be shown.');
  }

  function overrideKey(person, record) {
    return person.upn + '|' + record.conversation + '|' + record.activityId;
  }

  function teamsItem(record, person) {
    const okey = overrideKey(person, record);
    let override = S.overrides[okey];
    if (override && override.versions !== record.versions.length) {
      delete S.overrides[okey]; // the bot updated the card for everyone since
      override = null;
    }
    const key = ['teams', person.upn, record.conversation, record.activityId, record.versions.length,
      record.deleted ? 'd' : '', override ? override.seq : ''].join('|');
    return {
      key,
      build: () => {
        const activity = record.activity || {};
        const posted = new Date(record.versions[0] ? record.versions[0].at : '');
        const edited = record.versions.length > 1 && !record.deleted ? h('span', { class: 'edited' }, 'Edited') : null;
        const content = [];
        if (record.deleted) {
          content.push(h('div', { class: 'text deleted' }, 'This message has been deleted.'));
        } else {
          if (activity.text) {
            content.push(h('div', {
              class: 'text',
              html: activity.textFormat === 'plain' ? plainHtml(activity.text) : teamsMarkdown(activity.text),
            }));
          }
          const cards = override ? [{ contentType: AC_TYPE, content: override.card }] : (activity.attachments || []);
          for (const attachment of cards) {
            if (attachment.contentType === AC_TYPE) {
              content.push(renderCard(attachment.content, (action) => teamsAction(record, action)));
            } else {
              content.push(h('div', { class: 'card-error' }, 'An attachment of type ' + attachment.contentType + '.'));
            }
          }
        }
        return h('div', { class: 'msg bot teams-msg' },
          botAvatar(),
          h('div', { class: 'bubble' }, botMeta(posted, edited), content));
      },
    };
  }

  async function teamsAction(record, action) {
    const type = action.getJsonTypeName();
    if (type === 'Action.OpenUrl') {
      openLink(action.url);
      return;
    }
    if (type !== 'Action.Execute' && type !== 'Action.Submit') return;
    const person = me();
    const body = { user: person.upn, reply_to_id: record.activityId };
    if (record.conversationType !== 'personal') body.conversation = String(record.conversation).split(THREAD)[0];
    const data = action.data && typeof action.data === 'object' ? action.data : {};
    if (type === 'Action.Execute') {
      const invokeAction = { type: 'Action.Execute', verb: action.verb, data };
      if (action.id) invokeAction.id = action.id;
      body.invoke = { action: invokeAction, trigger: 'manual' };
    } else {
      body.value = data;
    }
    const node = document.querySelector('[data-key^="teams|' + CSS.escape(person.upn) + '|' + CSS.escape(record.conversation) + '|' + CSS.escape(record.activityId) + '|"]');
    if (node) node.classList.add('busy');
    const result = await api('POST', API + '/teams/send', body);
    if (node) node.classList.remove('busy');
    if (!result.ok) {
      toast('The click did not reach the bot: ' + (errorText(result.data) || 'HTTP ' + result.status), 'error');
      return;
    }
    const answer = result.data.body;
    if (result.data.status >= 400) {
      toast('The bot answered HTTP ' + result.data.status + '.', 'error');
    } else if (answer && answer.type === AC_TYPE && answer.value) {
      S.overrides[overrideKey(person, record)] = { card: answer.value, versions: record.versions.length, seq: ++S.seq };
    } else if (answer && answer.type === 'application/vnd.microsoft.activity.message' && answer.value) {
      toast(String(answer.value));
    } else if (answer && answer.statusCode >= 400) {
      toast((answer.value && answer.value.message) || 'The bot could not do that.', 'error');
    }
    schedule();
  }

  // --- typing --------------------------------------------------------------------------------

  async function send(raw) {
    const text = raw.trim();
    if (!text || S.view !== 'dm') return;
    const person = me();
    const key = ownKey(person.upn, 'dm');
    const list = S.own[key] || (S.own[key] = []);
    const shownCount = S.data[S.platform] ? records('dm', person).length : 0;
    const entry = { id: ++S.seq + '-' + Date.now(), text, at: Date.now(), after: shownCount };
    let result;
    if (S.platform === 'slack') {
      const official = S.world.slack.command;
      let command = official;
      let rest = text;
      if (text.startsWith('/')) {
        command = text.split(/\s+/)[0];
        rest = text.slice(command.length).trim();
      } else if (text.toLowerCase().startsWith(official.slice(1) + ' ') || text.toLowerCase() === official.slice(1)) {
        rest = text.slice(official.length - 1).trim();
      }
      entry.text = (command + ' ' + rest).trim();
      list.push(entry);
      if (command !== official) {
        entry.error = command + ' is not a command in this workspace. Try ' + official + ' help.';
        store('own', S.own);
        render();
        return;
      }
      store('own', S.own);
      render();
      result = await api('POST', API + '/slack/command', { user: person.upn, command, text: rest });
    } else {
      list.push(entry);
      store('own', S.own);
      render();
      result = await api('POST', API + '/teams/send', { user: person.upn, text });
    }
    if (!result.ok) {
      entry.error = 'Not delivered: ' + (errorText(result.data) || 'HTTP ' + result.status);
    } else if (result.data.status >= 400) {
      entry.error = 'The bot answered HTTP ' + result.data.status + '.';
    }
    store('own', S.own);
    schedule();
  }

  // --- refresh -------------------------------------------------------------------------------

  let timer = null;
  function schedule() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      refresh();
    }, 30);
  }

  async function refresh() {
    if (S.refreshing) {
      S.again = true;
      return;
    }
    S.refreshing = true;
    try {
      do {
        S.again = false;
        const platform = S.platform;
        if (platform === 'slack') {
          const [messages, views] = await Promise.all([
            api('GET', API + '/slack/messages'),
            api('GET', API + '/slack/views'),
          ]);
          if (messages.ok && views.ok) S.data.slack = { messages: messages.data, views: views.data };
        } else {
          const activities = await api('GET', API + '/teams/activities');
          if (activities.ok) S.data.teams = { activities: activities.data.activities || [] };
        }
        render();
      } while (S.again);
    } finally {
      S.refreshing = false;
    }
  }

  function render() {
    document.title = me().name + ' · ' + (S.platform === 'slack' ? 'Slack' : 'Teams') + ' — Elevate demo';
    renderSidebar();
    renderHead();
    renderMessages();
    renderModal();
  }

  function listen() {
    const live = $('live');
    const source = new EventSource(CHAT + '/events');
    source.addEventListener('change', () => {
      live.textContent = 'live';
      live.className = 'live on';
      schedule();
    });
    source.onerror = () => {
      live.textContent = 'reconnecting…';
      live.className = 'live off';
    };
  }

  async function start() {
    const world = await api('GET', CHAT + '/people');
    if (!world.ok) {
      $('messages').replaceChildren(h('div', { class: 'empty' }, 'The sandbox is not answering. Is elevate demo still running?'));
      return;
    }
    S.world = world.data;
    S.own = load('own');
    S.seen = load('seen');
    parseHash();
    if (!S.world[S.platform].available) S.platform = S.platform === 'slack' ? 'teams' : 'slack';
    for (const button of document.querySelectorAll('[data-platform]')) {
      button.addEventListener('click', () => go({ platform: button.dataset.platform, view: 'dm' }));
    }
    $('composer').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('input');
      const text = input.value;
      input.value = '';
      send(text);
    });
    window.addEventListener('hashchange', () => {
      const platform = S.platform;
      parseHash();
      render();
      if (platform !== S.platform || !S.data[S.platform]) refresh();
      if (S.view === 'dm') $('input').focus();
    });
    render();
    listen();
    refresh();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
