package statuspage

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// BuildConfig is what Build reads.
type BuildConfig struct {
	Incidents dispatcher.IncidentStore
	Public    dispatcher.PublicStore
	// Maintenances, when set, are shown; nil: none.
	Maintenances dispatcher.MaintenanceStore
	// Names are the catalog's services and regions (refreshed each build).
	Names *dispatcher.NameCatalog
	// Renderer renders update bodies as a customer reading email gets
	// them; a copy of it renders each update as of the update's time, so
	// the text is what was sent then and does not age in the cache. Its
	// Prepare runs once per build. Nil: updates show the operator's text
	// only.
	Renderer *dispatcher.CatalogRenderer
	Page     Page
	// HistoryLimit is how many resolved incidents are kept (at most
	// MaxHistoryLimit); 0 is DefaultHistoryLimit.
	HistoryLimit int
	// Locales are the supported locales bodies are rendered in.
	Locales []string
	Logger  *slog.Logger // nil: slog.Default()

	// memo, when set, keeps the bodies of the last build for the next
	// (Snapshots sets it): an update renders again only when what its text
	// depends on changed.
	memo *bodyMemo
	// updates, when set, keeps the updates read by the last build
	// (Snapshots sets it): an incident's are read again only when its
	// LastSeq moved, so a rebuild reads the updates of the incidents that
	// changed, not of the whole history.
	updates *updatesMemo
}

// updatesMemo keeps incidents' updates between builds by incident id and
// LastSeq. Updates are only ever appended, and an update's fields never
// change after it is posted: the same LastSeq is the same list.
type updatesMemo struct {
	mu   sync.Mutex
	prev map[string]memoUpdates
	next map[string]memoUpdates
}

type memoUpdates struct {
	lastSeq int
	ups     []*dispatcher.Update
}

func (m *updatesMemo) start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next = make(map[string]memoUpdates, len(m.prev))
}

func (m *updatesMemo) finish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prev, m.next = m.next, nil
}

func (m *updatesMemo) get(inc *dispatcher.Incident) ([]*dispatcher.Update, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.prev[inc.ID]
	if !ok || e.lastSeq != inc.LastSeq {
		return nil, false
	}
	m.next[inc.ID] = e
	return e.ups, true
}

func (m *updatesMemo) put(inc *dispatcher.Incident, ups []*dispatcher.Update) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next[inc.ID] = memoUpdates{lastSeq: inc.LastSeq, ups: ups}
}

// bodyMemo keeps rendered bodies between builds, keyed by everything a
// body depends on. gen names the renderer's state (its catalogue with the
// template overrides, the catalog's names, zone and locales): when it
// changes, nothing is reused.
type bodyMemo struct {
	mu   sync.Mutex
	gen  string
	prev map[string]map[string]string
	next map[string]map[string]string
}

// start begins a build at generation gen.
func (m *bodyMemo) start(gen string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		m.gen, m.prev = gen, nil
	}
	m.next = make(map[string]map[string]string, len(m.prev))
}

// finish keeps the bodies the build used, for the next one.
func (m *bodyMemo) finish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prev, m.next = m.next, nil
}

func (m *bodyMemo) get(key string) (map[string]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.prev[key]
	if ok {
		m.next[key] = b
	}
	return b, ok
}

func (m *bodyMemo) put(key string, b map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next[key] = b
}

// uptimeDays is the length of an uptime bar.
const uptimeDays = 90

// openStates are the states an incident is open in.
var openStates = []dispatcher.State{dispatcher.StateInvestigating, dispatcher.StateIdentified, dispatcher.StateMonitoring}

// Build reads what the public may see and builds its Snapshot as of now:
// public incidents with their public updates only, the services of the
// catalog (and any a shown incident names) with one component per
// catalog region (and per other region a shown incident on it names),
// their status and 90 days of uptime, and the public
// maintenances. It never reads a recipient.
//
// The snapshot's Version identifies its content (equal content, equal
// Version, in every process), so the body cache and ETags follow what the
// public sees, time-driven changes included.
func Build(ctx context.Context, c BuildConfig, now time.Time) (*Snapshot, error) {
	snap, _, err := build(ctx, c, now)
	return snap, err
}

// build is Build that also returns the PublicVersion it read before
// anything else: a write after that moves the version again, so the next
// check rebuilds.
func build(ctx context.Context, c BuildConfig, now time.Time) (*Snapshot, int64, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = DefaultHistoryLimit
	}
	zone := time.UTC
	if loc, err := time.LoadLocation(c.Page.TimeZone); err == nil && c.Page.TimeZone != "" {
		zone = loc
	}
	pv, err := c.Public.PublicVersion(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("status page: public version: %w", err)
	}
	if c.Renderer != nil {
		if err := c.Renderer.Prepare(ctx); err != nil {
			return nil, 0, fmt.Errorf("status page: prepare renderer: %w", err)
		} // Prepare refreshes the names too
	} else if err := c.Names.Refresh(ctx); err != nil {
		return nil, 0, fmt.Errorf("status page: %w", err)
	}

	var all []*dispatcher.Incident
	for _, st := range openStates {
		list, err := c.Incidents.ListIncidents(ctx, st, MaxHistoryLimit)
		if err != nil {
			return nil, 0, fmt.Errorf("status page: list %s incidents: %w", st, err)
		}
		all = append(all, list...)
	}
	// More than the history keeps: private incidents and those without a
	// public update take no place in it.
	resolved, err := c.Incidents.ListIncidents(ctx, dispatcher.StateResolved, min(2*c.HistoryLimit, MaxHistoryLimit))
	if err != nil {
		return nil, 0, fmt.Errorf("status page: list resolved incidents: %w", err)
	}
	all = append(all, resolved...)
	all = slices.DeleteFunc(all, func(inc *dispatcher.Incident) bool { return inc.Private })

	if c.updates != nil {
		c.updates.start()
	}
	updates, err := readUpdates(ctx, c.Incidents, all, c.updates)
	if err != nil {
		return nil, 0, err
	}
	if c.updates != nil {
		c.updates.finish()
	}
	// Uptime counts open incidents up to the minute, so every process
	// building within the same minute has the same content (and Version).
	b := &builder{c: c, zone: zone, now: now, minute: now.Truncate(time.Minute)}
	if c.memo != nil {
		c.memo.start(b.generation())
	}
	snap := &Snapshot{BuiltAt: now, Page: c.Page}
	for i, inc := range all {
		if pi := b.incident(inc, updates[i]); pi != nil {
			snap.Incidents = append(snap.Incidents, pi)
		}
	}
	slices.SortStableFunc(snap.Incidents, func(a, b *Incident) int {
		return cmp.Or(b.StartedAt.Compare(a.StartedAt), strings.Compare(b.ID, a.ID))
	})
	kept := 0
	snap.Incidents = slices.DeleteFunc(snap.Incidents, func(inc *Incident) bool {
		if inc.ResolvedAt == nil {
			return false
		}
		kept++
		return kept > c.HistoryLimit
	})

	if c.Maintenances != nil {
		list, err := c.Maintenances.ListMaintenances(ctx, c.HistoryLimit)
		if err != nil {
			return nil, 0, fmt.Errorf("status page: list maintenances: %w", err)
		}
		for _, m := range list {
			if pm := b.maintenance(m); pm != nil {
				snap.Maintenances = append(snap.Maintenances, pm)
			}
		}
	}
	snap.Services = b.services(snap)
	b.status(snap)
	b.uptime(snap)

	snap.Version = contentVersion(snap)
	if c.memo != nil {
		c.memo.finish()
	}
	return snap, pv, nil
}

// readUpdates reads the updates of every incident, a few at a time.
// Those memo (nil: none) kept from the last build at the same LastSeq are
// not read again.
func readUpdates(ctx context.Context, store dispatcher.IncidentStore, incs []*dispatcher.Incident, memo *updatesMemo) ([][]*dispatcher.Update, error) {
	out := make([][]*dispatcher.Update, len(incs))
	errs := make([]error, len(incs))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, inc := range incs {
		if memo != nil {
			if ups, ok := memo.get(inc); ok {
				out[i] = ups
				continue
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ups, err := store.GetUpdates(ctx, inc.ID)
			if errors.Is(err, dispatcher.ErrNotFound) {
				return // deleted meanwhile: nothing to show
			}
			if err != nil {
				errs[i] = fmt.Errorf("status page: updates of %s: %w", inc.ID, err)
				return
			}
			out[i] = ups
			if memo != nil && len(ups) == inc.LastSeq {
				memo.put(inc, ups)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

type builder struct {
	c      BuildConfig
	zone   *time.Location
	now    time.Time
	minute time.Time // now, to the minute
}

// incident is inc as the public sees it; nil when none of its updates is
// public.
func (b *builder) incident(inc *dispatcher.Incident, ups []*dispatcher.Update) *Incident {
	pi := &Incident{
		ID: inc.ID, Title: inc.Title, Severity: inc.Severity, State: inc.State,
		Services: dispatcher.CanonicalServices(slices.Clone(inc.Services)), Regions: dispatcher.CanonicalRegions(slices.Clone(inc.Regions)),
		StartedAt: inc.Started(), CreatedAt: inc.CreatedAt, UpdatedAt: inc.UpdatedAt, ResolvedAt: inc.ResolvedAt,
	}
	for i := len(ups) - 1; i >= 0; i-- {
		up := ups[i]
		if up.Internal {
			continue
		}
		pi.Updates = append(pi.Updates, &Update{Seq: up.Seq, State: string(up.State), CreatedAt: up.CreatedAt, Body: b.bodies(inc, up)})
	}
	if len(pi.Updates) == 0 {
		return nil
	}
	// The state is public even when the update that moved it was not: so
	// is when monitoring began.
	for _, up := range ups {
		if up.State == dispatcher.StateMonitoring {
			t := up.CreatedAt
			pi.MonitoringAt = &t
			break
		}
	}
	// Updated when its last public update was posted, or edited since its
	// last update: an internal update's time is not the public's.
	pi.UpdatedAt = pi.Updates[0].CreatedAt
	if last := ups[len(ups)-1].CreatedAt; inc.UpdatedAt.After(last) {
		pi.UpdatedAt = inc.UpdatedAt
	}
	if inc.State == dispatcher.StateResolved && inc.ResolvedAt != nil {
		// A quiet resolution is public (the incident reads resolved):
		// feed readers and v2's updated_at must see it.
		pi.UpdatedAt = latest(pi.UpdatedAt, *inc.ResolvedAt)
	}
	return pi
}

// bodies renders up's text in every supported locale: the operator's long
// form (what a customer reading email gets), else the template's body for
// a customer, without greeting or footer, rendered as of the update.
func (b *builder) bodies(inc *dispatcher.Incident, up *dispatcher.Update) map[string]string {
	if b.c.memo == nil {
		return b.render(inc, up)
	}
	key := bodyKey(inc, up)
	if out, ok := b.c.memo.get(key); ok {
		return out
	}
	out := b.render(inc, up)
	b.c.memo.put(key, out)
	return out
}

// bodyKey is a hash of everything an update's text depends on.
func bodyKey(inc *dispatcher.Incident, up *dispatcher.Update) string {
	h := fnv.New128a()
	_ = json.NewEncoder(h).Encode(struct {
		ID                string
		Title             dispatcher.Title
		Severity          dispatcher.Severity
		Services, Regions []string
		Started           time.Time
		Update            *dispatcher.Update
	}{inc.ID, inc.Title, inc.Severity, inc.Services, inc.Regions, inc.Started(), up})
	return string(h.Sum(nil))
}

// generation names the renderer's state: the catalogue it renders from
// (a new one when template overrides reload), the names, zone and locales.
func (b *builder) generation() string {
	h := fnv.New128a()
	if r := b.c.Renderer; r != nil {
		cat := r.Catalog
		if r.Templates != nil {
			cat = r.Templates.Catalog()
		}
		fmt.Fprintf(h, "%p\x00", cat)
	}
	_ = json.NewEncoder(h).Encode(b.c.Names.View())
	fmt.Fprintf(h, "%s\x00%s", b.c.Page.TimeZone, strings.Join(b.c.Locales, ","))
	return string(h.Sum(nil))
}

// render renders up's text in every supported locale.
func (b *builder) render(inc *dispatcher.Incident, up *dispatcher.Update) map[string]string {
	out := make(map[string]string, len(b.c.Locales))
	if b.c.Renderer == nil {
		for _, l := range b.c.Locales {
			if t, ok := operatorText(up.Message, l); ok {
				out[l] = t
			}
		}
		return out
	}
	r := *b.c.Renderer
	at := up.CreatedAt
	r.Clock = dispatcher.ClockFunc(func() time.Time { return at })
	for _, l := range b.c.Locales {
		req := dispatcher.RenderRequest{Locale: l, Timezone: b.c.Page.TimeZone, NameZone: true, Kind: dispatcher.KindCustomer, Channel: dispatcher.ChannelWebhook, Incident: inc, Update: up}
		msg, err := r.Render(req)
		if err == nil && msg.OperatorFrom != "" {
			// The operator wrote one: take the email's form, its
			// paragraphs kept, without the email's footer paragraph.
			req.Channel = dispatcher.ChannelEmail
			if msg, err = r.Render(req); err == nil {
				if i := strings.LastIndex(msg.Body, "\n\n"); i >= 0 {
					msg.Body = msg.Body[:i]
				}
			}
		}
		if err != nil {
			b.c.Logger.Warn("status page: an update's body could not be rendered", "incident_id", inc.ID, "seq", up.Seq, "locale", l, "err", err)
			continue
		}
		out[l] = msg.Body
	}
	return out
}

// operatorText is the operator's text a customer reading email in locale
// gets, looked up by tag, then language, then English.
func operatorText(msgs dispatcher.Texts, locale string) (string, bool) {
	chain := []string{locale}
	if base, _, ok := strings.Cut(locale, "-"); ok {
		chain = append(chain, base)
	}
	chain = append(chain, "en")
	for _, tag := range chain {
		if t, ok := msgs[tag]; ok {
			if s, _, ok := t.For(dispatcher.KindCustomer, dispatcher.ChannelEmail); ok {
				return s, true
			}
		}
	}
	return "", false
}

// maintenance is m as the public sees it now, its state moved by the
// clock as the window says (scheduled → in_progress at its start, →
// completed at its end) when no operator moved it first; nil when private.
func (b *builder) maintenance(m *dispatcher.Maintenance) *Maintenance {
	if m.Private {
		return nil
	}
	pm := &Maintenance{
		ID: m.ID, Title: m.Title, State: effectiveState(m, b.now),
		Services: dispatcher.CanonicalServices(slices.Clone(m.Services)), Regions: dispatcher.CanonicalRegions(slices.Clone(m.Regions)),
		ScheduledFor: m.ScheduledFor, ScheduledUntil: m.ScheduledUntil, StartedAt: m.StartedAt, EndedAt: m.EndedAt,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
	for i := len(m.Updates) - 1; i >= 0; i-- {
		up := m.Updates[i]
		if up.Internal {
			continue
		}
		body := map[string]string{}
		for _, l := range b.c.Locales {
			if t, ok := operatorText(up.Message, l); ok {
				body[l] = t
			}
		}
		if len(body) == 0 && (i == 0 || m.Updates[i-1].State != up.State) {
			body = b.maintenanceText(m, up)
		}
		pm.Updates = append(pm.Updates, &Update{Seq: up.Seq, State: string(up.State), CreatedAt: up.CreatedAt, Body: body})
	}
	// Updated when its last public update was posted or its state moved
	// (a move is public, whoever made it): never when an internal message
	// was posted or a reminder recorded, which m.UpdatedAt follows.
	pm.UpdatedAt = m.CreatedAt
	var prev dispatcher.MaintenanceState
	for _, up := range m.Updates {
		if !up.Internal || up.State != prev {
			pm.UpdatedAt = latest(pm.UpdatedAt, up.CreatedAt)
		}
		prev = up.State
	}
	return pm
}

// maintenanceEvents are the notice events whose text a move to a state
// without a message reads on the page (verifying has none).
var maintenanceEvents = map[dispatcher.MaintenanceState]string{
	dispatcher.MaintenanceScheduled: "scheduled", dispatcher.MaintenanceInProgress: "started",
	dispatcher.MaintenanceCompleted: "completed", dispatcher.MaintenanceCancelled: "cancelled",
}

// maintenanceText is Tocsin's own text of up's move, as the notice of
// that move says it (the window as it stands now), rendered in every
// supported locale in the page's zone; none without a renderer or for a
// state no notice names.
func (b *builder) maintenanceText(m *dispatcher.Maintenance, up dispatcher.MaintenanceUpdate) map[string]string {
	event, ok := maintenanceEvents[up.State]
	if b.c.Renderer == nil || !ok {
		return map[string]string{}
	}
	cat := b.c.Renderer.Catalog
	if b.c.Renderer.Templates != nil {
		cat = b.c.Renderer.Templates.Catalog()
	}
	texts, err := dispatcher.MaintenanceEventTexts(cat, event, len(m.Regions) > 0)
	if err != nil {
		b.c.Logger.Warn("status page: a maintenance's text could not be read", "maintenance_id", m.ID, "event", event, "err", err)
		return map[string]string{}
	}
	start := m.ScheduledFor
	inc := &dispatcher.Incident{
		Title: m.Title, State: dispatcher.StateNotice, Services: m.Services, Regions: m.Regions,
		StartedAt: &start, CreatedAt: m.CreatedAt, UpdatedAt: up.CreatedAt, LastSeq: 1,
	}
	nup := &dispatcher.Update{
		Seq: 1, State: dispatcher.StateNotice, Message: texts, CreatedAt: up.CreatedAt,
		Params: map[string]string{locales.ParamETA: m.ScheduledUntil.UTC().Format(time.RFC3339)},
	}
	return b.bodies(inc, nup)
}

func effectiveState(m *dispatcher.Maintenance, now time.Time) dispatcher.MaintenanceState {
	switch st := m.State; {
	case st == dispatcher.MaintenanceCompleted || st == dispatcher.MaintenanceCancelled:
		return st
	case !now.Before(m.ScheduledUntil):
		return dispatcher.MaintenanceCompleted
	case st == dispatcher.MaintenanceScheduled && !now.Before(m.ScheduledFor):
		return dispatcher.MaintenanceInProgress
	default:
		return st
	}
}

// nextBoundary is the first window start or end after now of a shown
// maintenance that is not over: the state changes then without a write.
func nextBoundary(s *Snapshot, now time.Time) time.Time {
	var next time.Time
	for _, m := range s.Maintenances {
		if m.State == dispatcher.MaintenanceCompleted || m.State == dispatcher.MaintenanceCancelled {
			continue
		}
		for _, t := range []time.Time{m.ScheduledFor, m.ScheduledUntil} {
			if t.After(now) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next
}

// services lists the catalog's services (and those a shown incident or
// maintenance names), in catalog order, then the others by label, each
// with its components (see regions).
func (b *builder) services(s *Snapshot) []*Service {
	view := b.c.Names.View()
	ids := make([]string, 0, len(view.Services))
	names := map[string]map[string]string{}
	for _, e := range view.Services {
		ids = append(ids, e.ID)
		names[e.ID] = e.Names
	}
	var extra []string
	add := func(list []string) {
		for _, id := range list {
			if names[id] == nil && !slices.Contains(extra, id) {
				extra = append(extra, id)
			}
		}
	}
	for _, inc := range s.Incidents {
		add(inc.Services)
	}
	for _, m := range s.Maintenances {
		add(m.Services)
	}
	slices.Sort(extra)
	ids = append(ids, extra...)

	out := make([]*Service, 0, len(ids))
	for i, id := range ids {
		svc := &Service{ID: id, Names: b.localized(names[id], id), Position: i + 1, Status: StatusOperational}
		for j, r := range b.regions(s, view.Regions, id) {
			svc.Components = append(svc.Components, &Component{
				ID: ComponentID(id, r.ID), Service: id, Region: r.ID, Names: b.localized(r.Names, r.ID),
				Position: j + 1, Status: StatusOperational,
			})
		}
		out = append(out, svc)
	}
	return out
}

// regions are the components of service: none but the whole service ("")
// when the catalog has no regions; else the catalog's regions, then by
// label those a shown incident or maintenance on the service names that
// the catalog does not (an incident in "CH" next to a catalog of cities
// would otherwise touch no component), named as messages name them.
func (b *builder) regions(s *Snapshot, catalog []*dispatcher.CatalogEntry, service string) []*dispatcher.CatalogEntry {
	if len(catalog) == 0 {
		return []*dispatcher.CatalogEntry{{ID: ""}}
	}
	var extra []string
	add := func(services, regions []string) {
		if len(services) > 0 && !slices.Contains(services, service) {
			return
		}
		for _, r := range regions {
			known := slices.ContainsFunc(catalog, func(e *dispatcher.CatalogEntry) bool { return e.ID == r })
			if !known && !slices.Contains(extra, r) {
				extra = append(extra, r)
			}
		}
	}
	for _, inc := range s.Incidents {
		add(inc.Services, inc.Regions)
	}
	for _, m := range s.Maintenances {
		add(m.Services, m.Regions)
	}
	if len(extra) == 0 {
		return catalog
	}
	slices.Sort(extra)
	out := slices.Clone(catalog)
	names := b.c.Names.Names()
	for _, r := range extra {
		e := &dispatcher.CatalogEntry{ID: r, Names: map[string]string{}}
		for _, l := range b.c.Locales {
			base, _, _ := strings.Cut(l, "-")
			e.Names[l] = names.Region(r, l, []string{l, base, "en"})
		}
		out = append(out, e)
	}
	return out
}

// localized returns a name for every supported locale: its own, its
// language's, English's, else the label.
func (b *builder) localized(names map[string]string, label string) map[string]string {
	out := make(map[string]string, len(b.c.Locales))
	for _, l := range b.c.Locales {
		base, _, _ := strings.Cut(l, "-")
		out[l] = cmp.Or(names[l], names[base], names["en"], label)
	}
	return out
}

// ComponentID is the stable id of a service's component in region (""
// for the whole service): 12 lowercase base32 characters of a hash, like
// Statuspage's ids.
func ComponentID(service, region string) string {
	sum := sha256.Sum256([]byte("component\x00" + service + "\x00" + region))
	return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:12])
}

// affects reports whether an incident or maintenance on services and
// regions (empty: all) touches component c.
func affects(services, regions []string, c *Component) bool {
	return (len(services) == 0 || slices.Contains(services, c.Service)) &&
		(len(regions) == 0 || c.Region == "" || slices.Contains(regions, c.Region))
}

// rank orders statuses from best to worst.
var rank = map[ComponentStatus]int{StatusOperational: 0, StatusUnderMaintenance: 1, StatusDegraded: 2, StatusPartialOutage: 3, StatusMajorOutage: 4}

func worse(a, b ComponentStatus) ComponentStatus {
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func severityStatus(s dispatcher.Severity) ComponentStatus {
	switch s {
	case dispatcher.SeverityCritical:
		return StatusMajorOutage
	case dispatcher.SeverityMajor:
		return StatusPartialOutage
	default:
		return StatusDegraded
	}
}

// status sets each component's status from the open incidents and the
// maintenances under way, its UpdatedAt from the last change that touched
// it, each service's status (its worst component's), and each incident's
// and maintenance's ComponentIDs.
func (b *builder) status(s *Snapshot) {
	for _, svc := range s.Services {
		for _, c := range svc.Components {
			for _, inc := range s.Incidents {
				if !affects(inc.Services, inc.Regions, c) {
					continue
				}
				inc.ComponentIDs = append(inc.ComponentIDs, c.ID)
				c.UpdatedAt = latest(c.UpdatedAt, inc.StartedAt)
				if inc.ResolvedAt != nil {
					c.UpdatedAt = latest(c.UpdatedAt, *inc.ResolvedAt)
				} else {
					c.Status = worse(c.Status, severityStatus(inc.Severity))
				}
			}
			for _, m := range s.Maintenances {
				if !affects(m.Services, m.Regions, c) {
					continue
				}
				m.ComponentIDs = append(m.ComponentIDs, c.ID)
				switch m.State {
				case dispatcher.MaintenanceInProgress, dispatcher.MaintenanceVerifying:
					c.Status = worse(c.Status, StatusUnderMaintenance)
					c.UpdatedAt = latest(c.UpdatedAt, cmp.Or(deref(m.StartedAt), m.ScheduledFor))
				case dispatcher.MaintenanceCompleted:
					if end := cmp.Or(deref(m.EndedAt), m.ScheduledUntil); !end.After(b.now) {
						c.UpdatedAt = latest(c.UpdatedAt, end)
					}
				}
			}
			svc.Status = worse(svc.Status, c.Status)
		}
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// uptime sets each service's last 90 days (in the page's zone, today
// last): how long a major or critical incident was open on it (Down), how
// long only a minor one (Degraded), and the incidents open each day.
func (b *builder) uptime(s *Snapshot) {
	y, m, d := b.minute.In(b.zone).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, b.zone)
	first := today.AddDate(0, 0, -(uptimeDays - 1))
	for _, svc := range s.Services {
		var down, any []span
		var incs []*Incident
		for _, inc := range s.Incidents {
			if len(inc.Services) > 0 && !slices.Contains(inc.Services, svc.ID) {
				continue
			}
			end := b.openUntil(inc)
			if !end.After(first) || !end.After(inc.StartedAt) {
				continue
			}
			sp := span{inc.StartedAt, end}
			any = append(any, sp)
			if inc.Severity != dispatcher.SeverityMinor {
				down = append(down, sp)
			}
			incs = append(incs, inc)
		}
		svc.Uptime = make([]Day, uptimeDays)
		for i := range svc.Uptime {
			start := first.AddDate(0, 0, i)
			day := span{start, start.AddDate(0, 0, 1)}
			dn := covered(down, day)
			svc.Uptime[i] = Day{Date: start, Down: dn, Degraded: covered(any, day) - dn}
			for _, inc := range incs {
				if end := b.openUntil(inc); inc.StartedAt.Before(day.to) && end.After(day.from) {
					svc.Uptime[i].Incidents = append(svc.Uptime[i].Incidents, inc.ID)
				}
			}
		}
	}
}

// openUntil is when inc stops counting on the uptime bars: its
// resolution, else the current minute (the same in every process building
// within it), but at least the end of the minute it started in, so an
// incident opened within the current minute shows on today's bar at once.
func (b *builder) openUntil(inc *Incident) time.Time {
	if inc.ResolvedAt != nil {
		return *inc.ResolvedAt
	}
	return latest(b.minute, inc.StartedAt.Truncate(time.Minute).Add(time.Minute))
}

type span struct{ from, to time.Time }

// covered is how much of within the union of spans covers.
func covered(spans []span, within span) time.Duration {
	var cut []span
	for _, s := range spans {
		from, to := latest(s.from, within.from), s.to
		if to.After(within.to) {
			to = within.to
		}
		if to.After(from) {
			cut = append(cut, span{from, to})
		}
	}
	slices.SortFunc(cut, func(a, b span) int { return a.from.Compare(b.from) })
	var total time.Duration
	var cur span
	for i, s := range cut {
		switch {
		case i == 0:
			cur = s
		case !s.from.After(cur.to):
			cur.to = latest(cur.to, s.to)
		default:
			total += cur.to.Sub(cur.from)
			cur = s
		}
	}
	if len(cut) > 0 {
		total += cur.to.Sub(cur.from)
	}
	return total
}

// contentVersion is a hash of what s shows (all but Version and BuiltAt):
// positive, equal for equal content.
func contentVersion(s *Snapshot) int64 {
	h := fnv.New64a()
	enc := json.NewEncoder(h)
	_ = enc.Encode(s.Page)
	_ = enc.Encode(s.Services)
	_ = enc.Encode(s.Incidents)
	_ = enc.Encode(s.Maintenances)
	return int64(h.Sum64() >> 1)
}
