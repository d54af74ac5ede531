package queue

import (
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// Monitor returns asynqmon, the queue monitor (a web UI and its JSON
// calls), rooted at root on the queues opt connects to; readOnly refuses
// every call but GET and hides the UI's actions. Task payloads are shown
// as they are: Tocsin's carry ids only (PlanPayload, BatchPayload,
// RetryPayload), never an address. The caller closes it (its Redis
// connections).
func Monitor(opt asynq.RedisConnOpt, root string, readOnly bool) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{RootPath: root, RedisConnOpt: opt, ReadOnly: readOnly})
}
