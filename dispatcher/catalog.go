package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/language"

	"github.com/tocsin-dev/tocsin/locales"
)

// The catalog gives services and regions display names per locale, which
// messages show instead of the raw labels ("Kartenzahlungen (Schweiz)", not
// "cards (CH)"). Names come from three sources, in increasing precedence:
// CLDR's names of ISO 3166-1 alpha-2 region codes (locales.Names), the
// configuration (catalog.services, catalog.regions), and the API (PUT
// /v1/catalog/services/{id}), which stores them through a CatalogStore.
// Ids are labels in their canonical form (see CanonicalService).

// CatalogKind is one of the catalog's two lists.
type CatalogKind string

const (
	CatalogServices CatalogKind = "services"
	CatalogRegions  CatalogKind = "regions"
)

// Valid reports whether k is a known list.
func (k CatalogKind) Valid() bool { return k == CatalogServices || k == CatalogRegions }

// canonical returns id in the canonical form of k's labels.
func (k CatalogKind) canonical(id string) string {
	if k == CatalogRegions {
		return CanonicalRegion(id)
	}
	return CanonicalService(id)
}

// noun is one of k's entries in messages: "service" or "region".
func (k CatalogKind) noun() string { return strings.TrimSuffix(string(k), "s") }

// CatalogNames are display names: canonical label -> canonical BCP 47 tag
// -> name.
type CatalogNames map[string]map[string]string

// StoredCatalog is what operators stored through the API, with a version
// that changes with every write (0: nothing was ever stored).
type StoredCatalog struct {
	Version  int64
	Services CatalogNames
	Regions  CatalogNames
}

// CatalogStore keeps the names operators give through the API.
type CatalogStore interface {
	// CatalogVersion returns the stored catalog's version: one cheap read,
	// asked once per batch.
	CatalogVersion(ctx context.Context) (int64, error)
	// LoadCatalog returns every stored entry and the version they are at.
	LoadCatalog(ctx context.Context) (*StoredCatalog, error)
	// PutCatalogNames replaces the names of one entry and moves the
	// version.
	PutCatalogNames(ctx context.Context, kind CatalogKind, id string, names map[string]string) error
	// DeleteCatalogNames removes one entry and moves the version, or
	// returns ErrNotFound when none is stored.
	DeleteCatalogNames(ctx context.Context, kind CatalogKind, id string) error
}

// Limits of the catalog.
const (
	// MaxCatalogEntries is the most entries of one kind the API stores.
	MaxCatalogEntries = 1000
	// MaxCatalogNames is the most names (locales) of one entry.
	MaxCatalogNames = 32
	// MaxCatalogName is the longest name, in characters.
	MaxCatalogName = 100
)

// CheckCatalogEntry checks one entry of kind and returns its canonical id
// and names. Every problem is a *FieldError in the returned
// *ValidationError, named idField (the id) or namesField.<tag> (a name).
// A name must be 1-MaxCatalogName characters on one line, under a BCP 47
// tag whose language Tocsin has messages in (locales.Languages), each
// language variant once ("de-ch" and "de-CH" are the same).
func CheckCatalogEntry(kind CatalogKind, id string, names map[string]string, idField, namesField string) (string, map[string]string, error) {
	v := &ValidationError{}
	if !labelPattern.MatchString(id) {
		v.add(idField, fmt.Sprintf("must be a %s: 1-64 characters of letters, digits and _.:-", kind.noun()), id)
	}
	id = kind.canonical(id)
	out := checkCatalogNames(v, names, namesField)
	return id, out, v.orNil()
}

func checkCatalogNames(v *ValidationError, names map[string]string, field string) map[string]string {
	switch {
	case len(names) == 0:
		v.add(field, "give at least one name, such as {\"de\": \"Kartenzahlungen\"}", nil)
		return nil
	case len(names) > MaxCatalogNames:
		v.add(field, fmt.Sprintf("at most %d names", MaxCatalogNames), nil)
	}
	languages := locales.Languages()
	out := make(map[string]string, len(names))
	given := make(map[string]string, len(names)) // canonical tag -> the key that gave it
	for _, key := range slices.Sorted(maps.Keys(names)) {
		f := field + "." + key
		tag, err := CanonicalLocale(key)
		if err != nil {
			v.add(f, "keys must be BCP 47 language tags such as de or de-CH", key)
			continue
		}
		if base, _ := language.MustParse(tag).Base(); !slices.Contains(languages, base.String()) {
			v.add(f, fmt.Sprintf("no messages are written in this language, so no reader would see the name: use one of %s (with a region if you like, such as de-CH)", strings.Join(languages, ", ")), key)
			continue
		}
		if first, dup := given[tag]; dup {
			v.add(f, fmt.Sprintf("is the same locale as %q (both are %s): give each once", first, tag), key)
			continue
		}
		given[tag] = key
		name := strings.TrimSpace(names[key])
		if name == "" || utf8.RuneCountInString(name) > MaxCatalogName {
			v.add(f, fmt.Sprintf("must be 1-%d characters", MaxCatalogName), nil)
			continue
		}
		if msg := textFault(name, false); msg != "" {
			v.add(f, msg, nil)
			continue
		}
		out[tag] = name
	}
	return out
}

// NameCatalog is the process's view of the catalog: the configured names,
// the stored ones as last loaded, and the locales.Names merged from both
// that renders read. Refresh reloads the stored names when their version
// moved; Names never touches the store, so rendering costs no round trip.
// It is safe for concurrent use.
type NameCatalog struct {
	store      CatalogStore // nil: configuration only
	configured StoredCatalog
	mu         sync.Mutex // one load at a time
	snap       atomic.Pointer[catalogSnapshot]
}

type catalogSnapshot struct {
	loaded bool // stored was read at version
	stored StoredCatalog
	names  *locales.Names
}

// NewNameCatalog returns the catalog of configured names (services and
// regions, each id -> locale -> name; checked with CheckCatalogEntry, the
// error naming catalog.<kind>.<id>) and of the names store keeps; store
// may be nil (configuration only: Put and Delete fail).
func NewNameCatalog(store CatalogStore, services, regions map[string]map[string]string) (*NameCatalog, error) {
	c := &NameCatalog{store: store, configured: StoredCatalog{Services: CatalogNames{}, Regions: CatalogNames{}}}
	v := &ValidationError{}
	for _, kc := range []struct {
		kind CatalogKind
		in   map[string]map[string]string
		out  CatalogNames
	}{{CatalogServices, services, c.configured.Services}, {CatalogRegions, regions, c.configured.Regions}} {
		given := map[string]string{}
		for _, id := range slices.Sorted(maps.Keys(kc.in)) {
			field := "catalog." + string(kc.kind) + "." + id
			canon, names, err := CheckCatalogEntry(kc.kind, id, kc.in[id], field, field+".names")
			var ve *ValidationError
			if errors.As(err, &ve) {
				v.Fields = append(v.Fields, ve.Fields...)
				continue
			}
			if first, dup := given[canon]; dup {
				v.add(field, fmt.Sprintf("is the same %s as %q (labels match case-insensitively): give it once", kc.kind.noun(), first), id)
				continue
			}
			given[canon] = id
			kc.out[canon] = names
		}
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	c.snap.Store(c.merge(StoredCatalog{}, false))
	return c, nil
}

// MustNameCatalog is NewNameCatalog for tests and fixed wiring: it panics
// on an invalid configuration.
func MustNameCatalog(store CatalogStore, services, regions map[string]map[string]string) *NameCatalog {
	c, err := NewNameCatalog(store, services, regions)
	if err != nil {
		panic(err)
	}
	return c
}

// merge builds the snapshot of the configured names overridden, locale by
// locale, by stored.
func (c *NameCatalog) merge(stored StoredCatalog, loaded bool) *catalogSnapshot {
	over := func(conf, api CatalogNames) map[string]map[string]string {
		out := make(map[string]map[string]string, len(conf)+len(api))
		for id, names := range conf {
			out[id] = maps.Clone(names)
		}
		for id, names := range api {
			if out[id] == nil {
				out[id] = map[string]string{}
			}
			maps.Copy(out[id], names)
		}
		return out
	}
	return &catalogSnapshot{loaded: loaded, stored: stored,
		names: locales.NewNames(over(c.configured.Services, stored.Services), over(c.configured.Regions, stored.Regions))}
}

// Names returns the names renders read now; never nil.
func (c *NameCatalog) Names() *locales.Names {
	if c == nil {
		return nil
	}
	return c.snap.Load().names
}

// Refresh reads the stored catalog's version (one round trip) and reloads
// the stored names when it moved since the last load. The fan-out calls it
// once per batch, before rendering.
func (c *NameCatalog) Refresh(ctx context.Context) error {
	if c == nil || c.store == nil {
		return nil
	}
	version, err := c.store.CatalogVersion(ctx)
	if err != nil {
		return fmt.Errorf("catalog version: %w", err)
	}
	if s := c.snap.Load(); s.loaded && s.stored.Version == version {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.snap.Load(); s.loaded && s.stored.Version == version {
		return nil // another caller loaded it meanwhile
	}
	stored, err := c.store.LoadCatalog(ctx)
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	c.snap.Store(c.merge(*stored, true))
	return nil
}

// CatalogEntry is one service or region with every name a reader may get.
type CatalogEntry struct {
	ID string `json:"id"`
	// Names maps a BCP 47 tag to the name read in it: the stored name,
	// else the configured one, else (an ISO region code) CLDR's name in
	// each language Tocsin has messages in.
	Names map[string]string `json:"names"`
	// Sources says where each name comes from: "api", "config" or "cldr".
	Sources map[string]string `json:"sources"`
}

// CatalogView is the whole catalog: every service and region with a name
// from the configuration or the API, sorted by id.
type CatalogView struct {
	Services []*CatalogEntry `json:"services"`
	Regions  []*CatalogEntry `json:"regions"`
}

// Sources of a name.
const (
	sourceAPI    = "api"
	sourceConfig = "config"
	sourceCLDR   = "cldr"
)

// entry returns the entry of id in s (nil when it has no name anywhere).
func (c *NameCatalog) entry(s *catalogSnapshot, kind CatalogKind, id string) *CatalogEntry {
	conf, api := c.configured.Services[id], s.stored.Services[id]
	if kind == CatalogRegions {
		conf, api = c.configured.Regions[id], s.stored.Regions[id]
	}
	e := &CatalogEntry{ID: id, Names: map[string]string{}, Sources: map[string]string{}}
	if kind == CatalogRegions {
		if r, ok := locales.RegionCode(id); ok {
			for _, lang := range locales.Languages() {
				if name := locales.CLDRRegionName(r, lang); name != "" {
					e.Names[lang], e.Sources[lang] = name, sourceCLDR
				}
			}
		}
	}
	for tag, name := range conf {
		e.Names[tag], e.Sources[tag] = name, sourceConfig
	}
	for tag, name := range api {
		e.Names[tag], e.Sources[tag] = name, sourceAPI
	}
	if len(e.Names) == 0 {
		return nil
	}
	return e
}

// View returns every configured or stored entry as last loaded (see
// Refresh), sorted by id: the status page's services and regions.
func (c *NameCatalog) View() *CatalogView { return c.view() }

// view returns every configured or stored entry.
func (c *NameCatalog) view() *CatalogView {
	s := c.snap.Load()
	out := &CatalogView{Services: []*CatalogEntry{}, Regions: []*CatalogEntry{}}
	for _, kl := range []struct {
		kind      CatalogKind
		conf, api CatalogNames
		entries   *[]*CatalogEntry
	}{
		{CatalogServices, c.configured.Services, s.stored.Services, &out.Services},
		{CatalogRegions, c.configured.Regions, s.stored.Regions, &out.Regions},
	} {
		ids := slices.Sorted(maps.Keys(kl.conf))
		for id := range kl.api {
			if kl.conf[id] == nil {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			if e := c.entry(s, kl.kind, id); e != nil {
				*kl.entries = append(*kl.entries, e)
			}
		}
	}
	return out
}

// errNoCatalogStore is returned by writes to a catalog without a store.
var errNoCatalogStore = errors.New("catalog: no store to keep names in")

// Catalog returns every service and region with a configured or stored
// name, as renders read them now.
func (s *Service) Catalog(ctx context.Context) (*CatalogView, error) {
	if err := s.c.Catalog.Refresh(ctx); err != nil {
		return nil, err
	}
	return s.c.Catalog.view(), nil
}

// catalogID checks kind and the path's id, and returns the canonical id.
func catalogID(kind CatalogKind, id string) (string, error) {
	if !kind.Valid() {
		return "", fmt.Errorf("catalog list %q: %w", kind, ErrNotFound)
	}
	if !labelPattern.MatchString(id) {
		return "", &ValidationError{Fields: []*FieldError{{Field: "path.id",
			Message: fmt.Sprintf("must be a %s: 1-64 characters of letters, digits and _.:-", kind.noun()), Value: id}}}
	}
	return kind.canonical(id), nil
}

// GetCatalogEntry returns the names of one service or region (an ISO
// region code has CLDR's at least), or ErrNotFound.
func (s *Service) GetCatalogEntry(ctx context.Context, kind CatalogKind, id string) (*CatalogEntry, error) {
	id, err := catalogID(kind, id)
	if err != nil {
		return nil, err
	}
	if err := s.c.Catalog.Refresh(ctx); err != nil {
		return nil, err
	}
	e := s.c.Catalog.entry(s.c.Catalog.snap.Load(), kind, id)
	if e == nil {
		return nil, notFoundID(kind.noun(), id)
	}
	return e, nil
}

// PutCatalogEntry stores the names of one service or region, replacing the
// ones stored before (configured names stay, below them), and returns the
// entry as renders read it from now on.
func (s *Service) PutCatalogEntry(ctx context.Context, kind CatalogKind, id string, names map[string]string) (*CatalogEntry, error) {
	if !kind.Valid() {
		return nil, fmt.Errorf("catalog list %q: %w", kind, ErrNotFound)
	}
	id, names, err := CheckCatalogEntry(kind, id, names, "path.id", "body.names")
	if err != nil {
		return nil, err
	}
	cat := s.c.Catalog
	if cat.store == nil {
		return nil, errNoCatalogStore
	}
	if err := cat.Refresh(ctx); err != nil {
		return nil, err
	}
	stored := cat.snap.Load().stored.Services
	if kind == CatalogRegions {
		stored = cat.snap.Load().stored.Regions
	}
	if stored[id] == nil && len(stored) >= MaxCatalogEntries {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "path.id",
			Message: fmt.Sprintf("the catalog already stores %d %s, the most it keeps: delete one first", MaxCatalogEntries, kind)}}}
	}
	if err := cat.store.PutCatalogNames(ctx, kind, id, names); err != nil {
		return nil, fmt.Errorf("store %s %q: %w", kind.noun(), id, err)
	}
	if err := cat.Refresh(ctx); err != nil {
		return nil, err
	}
	return cat.entry(cat.snap.Load(), kind, id), nil
}

// DeleteCatalogEntry removes the stored names of one service or region
// (configured and CLDR names stay), or returns ErrNotFound when none are
// stored.
func (s *Service) DeleteCatalogEntry(ctx context.Context, kind CatalogKind, id string) error {
	id, err := catalogID(kind, id)
	if err != nil {
		return err
	}
	cat := s.c.Catalog
	if cat.store == nil {
		return notFoundID(kind.noun(), id)
	}
	if err := cat.store.DeleteCatalogNames(ctx, kind, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return notFoundID(kind.noun(), id)
		}
		return fmt.Errorf("delete %s %q: %w", kind.noun(), id, err)
	}
	return cat.Refresh(ctx)
}

// PreparedRenderer is a Renderer with data of its own to bring up to date
// (the catalog's names) before a run of renders: the fan-out calls Prepare
// once per batch or retry, and previews once, never per delivery.
type PreparedRenderer interface {
	Renderer
	Prepare(ctx context.Context) error
}

// prepareRender prepares the fan-out's renderer, if it needs it.
func (f *Fanout) prepareRender(ctx context.Context) error {
	if p, ok := f.c.Renderer.(PreparedRenderer); ok {
		return p.Prepare(ctx)
	}
	return nil
}
