// Web Push on the subscribe page: shown only where the browser has a
// service worker, the Push API and notifications, and the server offers
// Web Push (the section is rendered only then). On a click it asks for
// permission, registers the page's service worker, subscribes with the
// VAPID key of GET /api/public/webpush/key and posts the subscription to
// POST /api/public/subscriptions with the scope and language chosen in
// the form above. Everything else on the page works without it.
(function () {
  'use strict';
  var box = document.getElementById('webpush');
  if (!box || !('serviceWorker' in navigator) || !('PushManager' in window) ||
      !('Notification' in window) || !window.fetch || !window.Promise) {
    return;
  }
  var button = document.getElementById('webpush-button');
  var status = document.getElementById('webpush-status');
  box.hidden = false;

  function say(what) {
    status.textContent = status.getAttribute('data-' + what) || '';
  }

  // bytes decodes unpadded base64url.
  function bytes(s) {
    var b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
    var out = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) {
      out[i] = b.charCodeAt(i);
    }
    return out;
  }

  // chosen is the form's scope and language.
  function chosen() {
    var form = document.querySelector('form.sub');
    var out = { services: [], regions: [], locale: document.documentElement.lang };
    if (!form) {
      return out;
    }
    var some = form.querySelector('input[name="scope"][value="some"]');
    if (some && some.checked) {
      form.querySelectorAll('input[name="service"]:checked').forEach(function (el) { out.services.push(el.value); });
      form.querySelectorAll('input[name="region"]:checked').forEach(function (el) { out.regions.push(el.value); });
    }
    var locale = form.querySelector('select[name="locale"]');
    if (locale && locale.value) {
      out.locale = locale.value;
    }
    return out;
  }

  function json(r) {
    if (!r.ok) {
      throw new Error('HTTP ' + r.status);
    }
    return r.json();
  }

  var denied = {};

  button.addEventListener('click', function () {
    button.disabled = true;
    say('none');
    Notification.requestPermission().then(function (permission) {
      if (permission !== 'granted') {
        throw denied;
      }
      return Promise.all([
        navigator.serviceWorker.register(box.getAttribute('data-sw'), { scope: box.getAttribute('data-scope') })
          .then(function () { return navigator.serviceWorker.ready; }),
        fetch('/api/public/webpush/key', { credentials: 'omit' }).then(json)
      ]);
    }).then(function (got) {
      return got[0].pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(got[1].public_key) });
    }).then(function (sub) {
      var j = sub.toJSON();
      var c = chosen();
      return fetch('/api/public/subscriptions', {
        method: 'POST',
        credentials: 'omit',
        headers: { 'Content-Type': 'application/json' },
        // Only what the API reads: toJSON() also has expirationTime.
        body: JSON.stringify({
          channel: 'webpush',
          push: { endpoint: j.endpoint, keys: { p256dh: j.keys.p256dh, auth: j.keys.auth } },
          services: c.services, regions: c.regions, locale: c.locale
        })
      }).then(json);
    }).then(function (res) {
      say('done');
      if (res.manage_token) {
        var a = document.createElement('a');
        a.href = status.getAttribute('data-manage-url') + '&token=' + encodeURIComponent(res.manage_token);
        a.textContent = status.getAttribute('data-manage');
        a.id = 'webpush-manage';
        status.appendChild(document.createTextNode(' '));
        status.appendChild(a);
      }
    }).catch(function (err) {
      say(err === denied ? 'denied' : 'failed');
      button.disabled = false;
    });
  });
})();
