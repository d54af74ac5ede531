// The status page's Web Push service worker, served at {prefix}/sw.js with
// the prefix as its scope. It shows Tocsin's Web Push payloads
// (channels/push: {"title", "body", "data": {incident_id, state, seq,
// severity, manage_url, unsubscribe_url, ...}}) and opens the incident's
// page when the notification is clicked. It caches nothing and fetches
// nothing.
'use strict';

self.addEventListener('install', function () {
  self.skipWaiting();
});

self.addEventListener('activate', function (event) {
  event.waitUntil(self.clients.claim());
});

// payload reads a push message's JSON; a message that is not JSON shows
// as its text.
function payload(event) {
  if (!event.data) {
    return {};
  }
  try {
    var p = event.data.json();
    return p && typeof p === 'object' ? p : {};
  } catch (e) {
    return { body: event.data.text() };
  }
}

self.addEventListener('push', function (event) {
  var p = payload(event);
  var data = p.data && typeof p.data === 'object' ? p.data : {};
  var options = {
    body: typeof p.body === 'string' ? p.body : '',
    data: data,
    // One notification per incident: a newer update replaces the older.
    tag: data.incident_id ? 'incident-' + data.incident_id : undefined,
    renotify: !!data.incident_id,
    requireInteraction: data.severity === 'critical'
  };
  var title = typeof p.title === 'string' && p.title ? p.title : self.registration.scope;
  event.waitUntil(self.registration.showNotification(title, options));
});

// sameOrigin is url when it is on this page's origin, else the scope.
function sameOrigin(url) {
  try {
    var u = new URL(url, self.registration.scope);
    if (u.origin === self.location.origin) {
      return u.href;
    }
  } catch (e) {
    // fall through
  }
  return self.registration.scope;
}

self.addEventListener('notificationclick', function (event) {
  var data = event.notification.data || {};
  event.notification.close();
  var url = self.registration.scope;
  if (event.action === 'manage' && data.manage_url) {
    url = sameOrigin(data.manage_url);
  } else if (data.incident_id) {
    url = sameOrigin('incidents/' + encodeURIComponent(data.incident_id));
  }
  event.waitUntil(self.clients.openWindow(url));
});
