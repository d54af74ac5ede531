// Progressive enhancement of the status page: every <time data-local> is
// rewritten in the reader's own time zone, with the zone named, in the
// page's language. Without JavaScript the server's text stays: the page's
// zone, also named.
(function () {
  'use strict';
  var lang = document.documentElement.lang || undefined;
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(lang, {
      year: 'numeric', month: 'short', day: 'numeric',
      hour: '2-digit', minute: '2-digit', timeZoneName: 'short'
    });
  } catch (e) {
    return;
  }
  var nodes = document.querySelectorAll('time[data-local]');
  for (var i = 0; i < nodes.length; i++) {
    var el = nodes[i];
    var d = new Date(el.getAttribute('datetime'));
    if (isNaN(d.getTime())) {
      continue;
    }
    el.title = el.textContent;
    el.textContent = fmt.format(d);
  }
  var note = document.getElementById('zone-note');
  var zone = fmt.resolvedOptions().timeZone;
  if (note && zone && note.getAttribute('data-local')) {
    note.textContent = note.getAttribute('data-local').replace('{zone}', zone);
  }
})();
