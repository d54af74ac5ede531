// Package confcheck collects the problems of a configuration struct, every
// one at once, each naming its field. A channel's Config checks itself with
// it, naming its fields as its caller asks: by their Go names for a
// program, by their options' paths for Tocsin's configuration file
// (package config), so both read one rule set.
package confcheck

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// A Problem is one problem with one field.
type Problem struct {
	// Field names the field at fault, as the Checker's name function
	// names it; "" when the problem is of several fields.
	Field string
	// Message says what is wrong. It never repeats a secret.
	Message string
}

func (p *Problem) Error() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// A Checker collects problems.
type Checker struct {
	name     func(string) string
	problems []error
}

// New returns a Checker that names a field with name (nil: as given).
func New(name func(field string) string) *Checker {
	if name == nil {
		name = func(field string) string { return field }
	}
	return &Checker{name: name}
}

// Name names field as the reader knows it.
func (c *Checker) Name(field string) string { return c.name(field) }

// Add records a problem with field.
func (c *Checker) Add(field, format string, args ...any) {
	c.problems = append(c.problems, &Problem{Field: c.name(field), Message: fmt.Sprintf(format, args...)})
}

// Err returns every problem, joined with errors.Join; nil when there is none.
func (c *Checker) Err() error { return errors.Join(c.problems...) }

// Between checks lo <= n <= hi.
func (c *Checker) Between(field string, n, lo, hi int) {
	if n < lo || n > hi {
		c.Add(field, "must be between %d and %d, got %d", lo, hi, n)
	}
}

// Positive checks d > 0.
func (c *Checker) Positive(field string, d time.Duration) {
	if d <= 0 {
		c.Add(field, "must be greater than 0, got %s", d)
	}
}

// Merge adds the problems joined in err (errors.Join), as they are.
func (c *Checker) Merge(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		c.problems = append(c.problems, j.Unwrap()...)
	} else if err != nil {
		c.problems = append(c.problems, err)
	}
}

// Check adds err, when not nil, as the problem of field.
func (c *Checker) Check(field string, err error) {
	if err != nil {
		c.Add(field, "%v", err)
	}
}

// OneOf checks that value is one of allowed.
func (c *Checker) OneOf(field, value string, allowed ...string) {
	c.Check(field, NotOneOf(value, allowed...))
}

// NotOneOf says what is wrong with value when it is not one of allowed;
// nil when it is.
func NotOneOf(value string, allowed ...string) error {
	switch {
	case slices.Contains(allowed, value):
		return nil
	case value == "":
		return fmt.Errorf("is required: must be %s", OrList(allowed))
	}
	return fmt.Errorf("must be %s, got %q", OrList(allowed), value)
}

// OrList renders ["a" "b" "c"] as "a, b or c".
func OrList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// URL checks that value is an absolute http(s) URL without credentials,
// query or fragment; example shows what one looks like.
func (c *Checker) URL(field, value, example string) {
	c.Check(field, AbsoluteURL(value, example))
}

// AbsoluteURL says what is wrong with value as an absolute http(s) URL
// without credentials, query or fragment (example shows one); nil when
// nothing is. It never repeats credentials.
func AbsoluteURL(value, example string) error {
	u, err := url.Parse(value)
	switch {
	case err != nil:
		return fmt.Errorf("must be an absolute http or https URL: %v", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an absolute http or https URL like %s, got %q", example, value)
	case u.Host == "":
		return fmt.Errorf("must name a host, got %q", value)
	case u.User != nil:
		return errors.New("must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("must not have a query, got %q", value)
	case u.Fragment != "":
		return fmt.Errorf("must not have a fragment, got %q", value)
	}
	return nil
}
