package repair

import (
	"fmt"
	"math/rand/v2"
	"time"
)

var (
	orderStatuses   = []string{"created", "paid", "shipped", "delivered", "refunded"}
	orderCurrencies = []string{"EUR", "USD", "GBP", "JPY", "CNY"}
	orderSKUs       = []string{"book-1", "lamp-7", "mug-2", "pen-9", "tea-3", "cable-5", "chair-4"}
)

// OrderDoc appends order n of a deterministic sequence (seed) as the
// JSON document Table.Write takes for the `order` entity: order n+1,
// owned by one of 100 000 users, with 1-4 items and a version that grows
// with n.
func OrderDoc(dst []byte, seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	dst = fmt.Appendf(dst, `{"order_id":%d,"version":%d,"user_id":%d,"status":%q,"total_cents":%d,"currency":%q,"items":[`,
		n+1, at.UnixMicro(), 1+r.IntN(100_000), orderStatuses[r.IntN(len(orderStatuses))], 100+r.IntN(100_000), orderCurrencies[r.IntN(len(orderCurrencies))])
	for i := range 1 + r.IntN(4) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = fmt.Appendf(dst, `{"sku":%q,"qty":%d}`, orderSKUs[r.IntN(len(orderSKUs))], 1+r.IntN(5))
	}
	return fmt.Appendf(dst, `],"updated_at":%q}`, at.Format(time.RFC3339Nano))
}
