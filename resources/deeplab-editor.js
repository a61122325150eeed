/**
 * Editor helpers shared by the DeepLab nodes' dialogs (loaded by each node's .html from
 * resources/@nr-vision/node-red-deeplab/; Node-RED waits for it before running the node scripts).
 *
 * Validators follow Node-RED 3+: `validate(v, opt)` returns true, or the message shown on the red
 * field (false when called without `opt`, as older callers do). Every validator accepts
 * `undefined`: flows written by hand or by older versions may lack a property, and the runtime
 * takes its default then. The ranges here are the runtime's (nodes/*.ts, lib/): keep them equal.
 */
(function () {
  'use strict';

  function reply(ok, opt, message) {
    return ok ? true : (opt ? message : false);
  }

  function fmt(n) {
    return String(n);
  }

  /** "a whole number from 1 to 100", "a number above 0 and at most 1", ... */
  function describe(r) {
    var what = r.integer ? 'a whole number' : 'a number';
    var hasMin = r.min !== undefined;
    var hasMax = r.max !== undefined;
    if (hasMin && hasMax && !r.minExclusive && !r.maxExclusive) return what + ' from ' + fmt(r.min) + ' to ' + fmt(r.max);
    var parts = [];
    if (hasMin) parts.push((r.minExclusive ? 'above ' : 'at least ') + fmt(r.min));
    if (hasMax) parts.push((r.maxExclusive ? 'below ' : 'at most ') + fmt(r.max));
    return what + (parts.length ? ' ' + parts.join(' and ') : '');
  }

  function inRange(n, r) {
    if (!isFinite(n)) return false;
    if (r.integer && Math.floor(n) !== n) return false;
    if (r.min !== undefined && (r.minExclusive ? n <= r.min : n < r.min)) return false;
    if (r.max !== undefined && (r.maxExclusive ? n >= r.max : n > r.max)) return false;
    return true;
  }

  /** The number a field holds, NaN when it holds something else. */
  function toNumber(v) {
    if (typeof v === 'number') return v;
    var s = String(v).trim();
    return s === '' ? NaN : Number(s);
  }

  /**
   * A numeric property. r: {integer, min, max, minExclusive, maxExclusive, blank} where `blank`
   * (e.g. 'auto', 'the default', 'all') says what an empty field means; without it a value is required.
   * The range is kept on the validator (`.range`) for the spinners.
   */
  function number(r) {
    var message = 'must be ' + describe(r) + (r.blank ? ', or blank for ' + r.blank : '');
    var validate = function (v, opt) {
      if (v === undefined || v === null) return true;
      if (String(v).trim() === '') return reply(!!r.blank, opt, message);
      return reply(inRange(toNumber(v), r), opt, message);
    };
    validate.range = r;
    return validate;
  }

  function integer(r) {
    var o = {};
    for (var k in r) o[k] = r[k];
    o.integer = true;
    return number(o);
  }

  /** The value of another property: the open dialog's field when there is one, else the node's. */
  function field(node, name) {
    var el = $('#node-input-' + name);
    if (!el.length) el = $('#node-config-input-' + name);
    if (el.length) return el.attr('type') === 'checkbox' ? el.prop('checked') : el.val();
    return node[name];
  }

  /** A select's property: one of `values`. */
  function oneOf(values, what) {
    var message = (what || 'choose') + ' one of: ' + values.join(', ');
    return function (v, opt) {
      if (v === undefined || v === null || v === '') return true;
      return reply(values.indexOf(String(v)) >= 0, opt, message);
    };
  }

  /** A msg property path (the typedInput of a "msg." field). */
  function msgPath(v, opt) {
    if (v === undefined || v === null) return true;
    var s = String(v).trim();
    if (s === '') return reply(false, opt, 'give a message property, e.g. payload');
    var ok = RED.utils.validatePropertyExpression ? RED.utils.validatePropertyExpression(s.replace(/^msg\./, '')) : /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*|\[\d+\]|\["[^"]*"\]|\['[^']*'\])*$/.test(s);
    return reply(ok, opt, 'not a valid message property: ' + s);
  }

  /** Free text (names, folder names): anything, but not only spaces where a value is given. */
  function text(v, opt) {
    if (v === undefined || v === null || v === '') return true;
    return reply(String(v).trim() !== '', opt, 'only spaces: leave it empty or give a value');
  }

  /** Text that must be given when `predicate(node)` holds (e.g. a path for the chosen source). */
  function requiredWhen(predicate, message) {
    return function (v, opt) {
      if (!predicate(this)) return true;
      return reply(v !== undefined && v !== null && String(v).trim() !== '', opt, message);
    };
  }

  /** A memory budget in MB: above 0, blank for DEEPLAB_MEMORY_BUDGET_MB else 512. */
  var memoryBudget = number({ min: 0, minExclusive: true, blank: 'the default (512 MB)' });

  /**
   * Turns the dialog's integer fields into spinners with their validator's range, and validates
   * every field once, so a bad value shows red as the dialog opens.
   */
  function prepare(node, prefix) {
    var defaults = node._def.defaults;
    prefix = prefix || 'node-input-';
    Object.keys(defaults).forEach(function (name) {
      var r = defaults[name].validate && defaults[name].validate.range;
      var el = $('#' + prefix + name);
      if (!r || !r.integer || !el.length) return;
      var opts = {};
      if (r.min !== undefined) opts.min = r.minExclusive ? r.min + 1 : r.min;
      if (r.max !== undefined) opts.max = r.maxExclusive ? r.max - 1 : r.max;
      el.spinner(opts);
      // A spin is a change like typing: mark the field at once.
      el.on('spinstop', function () { el.trigger('change'); });
    });
  }

  window.DeepLabEditor = {
    number: number,
    integer: integer,
    oneOf: oneOf,
    msgPath: msgPath,
    text: text,
    requiredWhen: requiredWhen,
    memoryBudget: memoryBudget,
    field: field,
    prepare: prepare,
    describe: describe
  };
})();
