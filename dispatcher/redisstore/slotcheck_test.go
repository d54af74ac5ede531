package redisstore

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// slotCheck is a go-redis hook that fails, as Redis Cluster would with
// CROSSSLOT, every command, script and MULTI/EXEC whose keys are not all
// in one hash slot (keySlot: CLUSTER KEYSLOT's rule), so a standalone
// redis-server catches a key-layout mistake the cluster would refuse. A
// plain pipeline may span slots (the cluster client splits it by node);
// each of its commands may not. What a script reaches without declaring
// it in KEYS is not seen here: the cluster backend sees it.
type slotCheck struct{ t testing.TB }

var _ redis.Hook = slotCheck{}

func (slotCheck) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

func (h slotCheck) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.check([]redis.Cmder{cmd}); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h slotCheck) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && strings.EqualFold(cmds[0].Name(), "multi") {
			if err := h.check(cmds); err != nil {
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
			return next(ctx, cmds)
		}
		for _, c := range cmds {
			if err := h.check([]redis.Cmder{c}); err != nil {
				c.SetErr(err)
				return err
			}
		}
		return next(ctx, cmds)
	}
}

// check fails when the keys of cmds are in more than one slot.
func (h slotCheck) check(cmds []redis.Cmder) error {
	slot, first := -1, ""
	for _, c := range cmds {
		for _, k := range cmdKeys(c) {
			sl := keySlot(k)
			if slot < 0 {
				slot, first = sl, k
				continue
			}
			if sl != slot {
				err := fmt.Errorf("CROSSSLOT (slot check) %q is in slot %d, %q in %d: %v", first, slot, k, sl, c.Args())
				h.t.Errorf("%v", err)
				return err
			}
		}
	}
	return nil
}

// noKeys are the commands the store sends that name no key.
var noKeys = map[string]bool{
	"multi": true, "exec": true, "discard": true, "ping": true, "hello": true, "client": true,
	"select": true, "script": true, "info": true, "wait": true, "time": true, "dbsize": true,
	"keys": true, "scan": true, "cluster": true, "command": true, "config": true, "flushdb": true,
	"flushall": true, "auth": true, "readonly": true, "unwatch": true, "role": true, "slowlog": true,
	"memory": true, "latency": true, "debug": true, "function": true,
}

// cmdKeys are the keys cmd names, for the commands the store sends.
func cmdKeys(c redis.Cmder) []string {
	args := c.Args()
	name := strings.ToLower(c.Name())
	str := func(a []any) []string {
		out := make([]string, 0, len(a))
		for _, x := range a {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	numKeys := func(at int) []string {
		if len(args) <= at {
			return nil
		}
		n, _ := strconv.Atoi(fmt.Sprint(args[at]))
		return str(args[at+1 : min(len(args), at+1+n)])
	}
	switch {
	case noKeys[name]:
		return nil
	case name == "eval" || name == "evalsha" || name == "eval_ro" || name == "evalsha_ro" || name == "fcall":
		return numKeys(2)
	case name == "zunionstore" || name == "zinterstore" || name == "zdiffstore":
		return append(str(args[1:2]), numKeys(2)...)
	case name == "zunion" || name == "zinter" || name == "zdiff":
		return numKeys(1)
	case name == "mset" || name == "msetnx":
		var out []string
		for i := 1; i < len(args); i += 2 {
			out = append(out, fmt.Sprint(args[i]))
		}
		return out
	case name == "rename" || name == "renamenx" || name == "smove" || name == "rpoplpush" || name == "lmove" || name == "copy":
		return str(args[1:min(3, len(args))])
	case name == "mget" || name == "del" || name == "unlink" || name == "exists" || name == "touch" || name == "watch" ||
		name == "sunion" || name == "sinter" || name == "sdiff" || name == "sunionstore" || name == "sinterstore" || name == "sdiffstore":
		return str(args[1:])
	case len(args) > 1:
		return str(args[1:2])
	}
	return nil
}

// TestSlotCheck checks the checker: it must refuse what the cluster
// refuses and let through what it takes.
func TestSlotCheck(t *testing.T) {
	t.Parallel()
	ft := &recordTB{TB: t}
	rdb, _ := redistest.New(t)
	rdb.AddHook(slotCheck{ft})
	ctx := context.Background()
	if err := rdb.MGet(ctx, "{a}x", "{a}y").Err(); err != nil {
		t.Errorf("MGET in one slot: %v", err)
	}
	if err := rdb.MGet(ctx, "{a}x", "{b}y").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("MGET across slots: %v, want CROSSSLOT", err)
	}
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{a}x", 1, 0)
		p.Set(ctx, "{b}x", 1, 0)
		return nil
	}); err == nil {
		t.Error("MULTI across slots: no error")
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{a}x", 1, 0)
		p.Set(ctx, "{b}x", 1, 0)
		return nil
	}); err != nil {
		t.Errorf("a plain pipeline across slots: %v", err)
	}
	if err := rdb.Eval(ctx, "return 1", []string{"{a}x", "{b}x"}).Err(); err == nil {
		t.Error("a script across slots: no error")
	}
	if ft.errors != 3 {
		t.Errorf("the checker reported %d errors, want 3", ft.errors)
	}
	// The known slots of Redis's documentation (CLUSTER KEYSLOT).
	for k, want := range map[string]int{"somekey": 11058, "foo{hash_tag}": 2515, "{hash_tag}bar": 2515, "123456789": 12739, "{}x": keySlot("{}x")} {
		if got := keySlot(k); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", k, got, want)
		}
	}
}

// recordTB counts the errors reported to it instead of failing the test.
type recordTB struct {
	testing.TB
	errors int
}

func (r *recordTB) Errorf(string, ...any) { r.errors++ }

// newRedis is redistest.New with the slot check: every test of the package
// on a real redis-server fails on a command Redis Cluster would refuse.
func newRedis(tb testing.TB) (*redis.Client, *redis.Options) {
	tb.Helper()
	rdb, opts := redistest.New(tb)
	rdb.AddHook(slotCheck{tb})
	return rdb, opts
}
