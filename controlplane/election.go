package controlplane

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"gantry.io/gantry/store"
)

// whileLeader campaigns in the etcd election store.DefaultPrefix+"leader/"+name
// (10 s session TTL, value = who campaigns) and calls lead with a context that ends
// when ctx ends or the session is lost; after lead returns it resigns and campaigns
// again, until ctx ends. Several servers on one etcd run one lead between them.
// Failures to reach etcd are retried every second.
func whileLeader(ctx context.Context, cli *clientv3.Client, name, value string, lead func(context.Context)) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		el := concurrency.NewElection(sess, store.DefaultPrefix+"leader/"+name)
		if err := el.Campaign(ctx, value); err != nil {
			sess.Close()
			sleepCtx(ctx, time.Second)
			continue
		}
		leadCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
			case <-leadCtx.Done():
			}
			cancel()
		}()
		lead(leadCtx)
		cancel()
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_ = el.Resign(rctx)
		rcancel()
		sess.Close()
	}
}
