package redisstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Listing every recipient (no service or region filter) walks the record
// buckets (layout.go) instead of an index: shard after shard, bucket after
// bucket, each bucket's ids in order. A position is a bucket and the last
// id shown in it, so a listing resumes exactly where it stopped: every
// recipient that stays stored from the first page to the last is listed
// once, whatever else changes meanwhile (a recipient added to a bucket
// already walked is not listed, one added ahead is), on Redis and on
// miniredis alike, and no cursor depends on the server that gave it.
//
// The cursor is that of the other listings with set 'a', pos the bucket
// and after the last id shown (never pending ids).

// A step reads a window of buckets: one at first, twice as many after a
// step that matched fewer than the page's room and read fewer than
// allGrowIDs ids, up to a whole shard. A small database is listed in one
// page; a big one reads about a bucket's ids (or a few thousand) a step.
const allGrowIDs = 2000

// listAll fills page from c on, for ListRecipients: at most maxListSteps
// steps, each a window of buckets read in one pipeline and their records
// in another.
func (s *Store) listAll(ctx context.Context, f dispatcher.RecipientFilter, c listCursor, limit int, page *dispatcher.RecipientPage) (*dispatcher.RecipientPage, error) {
	if len(c.pending) > 0 {
		return nil, badCursor(f.Cursor, notACursor)
	}
	c.pos = min(c.pos, RecordBuckets) // past the last bucket: the next shard
	window := 1
	for range maxListSteps {
		until := min(int(c.pos)+window, RecordBuckets)
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, 0, until-int(c.pos))
		for b := int(c.pos); b < until; b++ {
			cmds = append(cmds, pipe.HKeys(ctx, bucketKey(c.shard, b)))
		}
		if len(cmds) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, fmt.Errorf("list recipients: %w", err)
			}
		}
		var ids []string
		for i, cmd := range cmds {
			bucket := cmd.Val()
			slices.Sort(bucket)
			if i == 0 && c.after != "" {
				j, found := slices.BinarySearch(bucket, c.after)
				if found {
					j++
				}
				bucket = bucket[j:]
			}
			ids = append(ids, bucket...)
		}
		matches, err := s.listMatches(ctx, f, 'a', ids)
		if err != nil {
			return nil, err
		}
		for _, r := range matches {
			if len(page.Recipients) == limit {
				last := page.Recipients[limit-1].ID
				nc := listCursor{set: 'a', shard: c.shard, pos: uint64(recordBucket(last)), after: last}
				page.NextCursor = nc.encode(f)
				return page, nil
			}
			page.Recipients = append(page.Recipients, r)
		}
		c.pos, c.after = uint64(until), ""
		if until == RecordBuckets {
			if c.shard+1 >= RecipientShards {
				return page, nil // the last bucket is walked
			}
			c.shard, c.pos = c.shard+1, 0
		}
		if len(page.Recipients) == limit {
			break
		}
		// Fewer matches than room: read more buckets at once.
		if len(ids) < allGrowIDs && len(matches) < limit-len(page.Recipients) {
			window = min(2*window, RecordBuckets)
		}
	}
	page.NextCursor = c.encode(f)
	return page, nil
}
