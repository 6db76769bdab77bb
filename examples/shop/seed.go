package shop

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Customer is one seeded customer and everything Seed wrote about them,
// to compare exports and erasures with.
type Customer struct {
	ID        int64     // customers.id: the shop's own identifier, shop_customer_id
	LetheID   string    // customers.lethe_id: the Lethe subject ID, "sub_" and 26 base32 characters
	Email     string    // customers.email, lower case: the identifier email
	FullName  string    // customers.full_name, "Ada Lovelace-0042"
	FirstName string    // the given name, as tickets and gift messages sign
	Phone     string    // customers.phone, "+44 7700 900042"
	BirthDate time.Time // customers.birth_date, midnight UTC; distinct per customer
	CreatedAt time.Time // customers.created_at, UTC, whole seconds

	Addresses []Address // 1 or 2; orders ship to, and invoices bill, the first
	Orders    []Order   // 1 to 3, each with 1 to 3 items and one invoice
	Tickets   []Ticket  // 0 to 2
	// Activity is the number of activity_log rows Seed wrote (3 to 10);
	// SeedActivity's come on top.
	Activity int
	// IPs and UserAgents are the customer's devices (1 or 2): activity_log
	// rows and the Redis session use them, pairwise.
	IPs        []string
	UserAgents []string
	// Newsletter says the customer's email is in the newsletter table
	// (every other customer) and in the Redis subscribers set.
	Newsletter bool

	// Cart and Views are what SeedRedis writes: the cart (product →
	// quantity) and the products viewed, most recent first.
	Cart  map[string]int
	Views []string
	// Avatar is the unique marker in the customer's avatar and its
	// thumbnails, which SeedFiles writes; "" for a customer without one.
	Avatar string
}

// Address is a row of addresses.
type Address struct {
	ID       int64
	Street   string // unique per customer: "Flat 42A, 17 Mill Lane"
	City     string
	Postcode string
	Country  string // ISO 3166-1 alpha-2
}

// String returns the address on one line, as orders.shipping_address and
// invoices.billing_address copy it.
func (a Address) String() string {
	return a.Street + ", " + a.Postcode + " " + a.City + ", " + a.Country
}

// Order is a row of orders, with its items and its invoice.
type Order struct {
	ID              int64
	PlacedAt        time.Time
	Status          string
	TotalCents      int64
	ShippingName    string
	ShippingAddress string
	Items           []Item
	Invoice         Invoice
}

// Item is a row of order_items.
type Item struct {
	ID         int64
	Product    string
	Quantity   int
	PriceCents int64
	// GiftMessage names the gift's recipient, a third person; "" (NULL)
	// for an item that is no gift.
	GiftMessage string
}

// Invoice is a row of invoices.
type Invoice struct {
	ID             int64
	Number         string // "INV-000042"
	IssuedAt       time.Time
	BillingName    string
	BillingAddress string
	TotalCents     int64
}

// Ticket is a row of support_tickets. Its body mentions the customer's
// name, email and phone number, as people write them.
type Ticket struct {
	ID        int64
	Subject   string
	Body      string
	CreatedAt time.Time
}

// PersonalValues returns every distinctive personal value seeded for the
// customer, each once: email, name, phone, birth date (2006-01-02), the
// streets, the one-line address orders and invoices copy, gift messages,
// ticket bodies, IP addresses, user agents and the avatar's marker (which
// only the files hold). None of them is a
// substring of another customer's (for shops of fewer than 10,000
// customers), so a value found names its customer. The Lethe subject ID
// and the shop's customer ID are left out: they are identifiers that logs
// and receipts may rightly hold.
func (c *Customer) PersonalValues() []string {
	var out []string
	seen := map[string]bool{}
	add := func(vs ...string) {
		for _, v := range vs {
			if v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	add(c.Email, c.FullName, c.Phone, c.BirthDate.Format(time.DateOnly))
	for _, a := range c.Addresses {
		add(a.Street)
	}
	for _, o := range c.Orders {
		add(o.ShippingName, o.ShippingAddress, o.Invoice.BillingName, o.Invoice.BillingAddress)
		for _, it := range o.Items {
			add(it.GiftMessage)
		}
	}
	for _, t := range c.Tickets {
		add(t.Body)
	}
	add(c.IPs...)
	add(c.UserAgents...)
	add(c.Avatar)
	return out
}

// Identifiers returns the identifiers Lethe's vault holds for the
// customer, by kind: email, and shop_customer_id (the shop's customers.id,
// which Redis keys and upload paths hold).
func Identifiers(c Customer) map[string]string {
	return map[string]string{"email": c.Email, "shop_customer_id": strconv.FormatInt(c.ID, 10)}
}

// NewsletterOnly is how many newsletter rows each Seed adds for people who
// are not customers ("reader.<id>@example.test").
const NewsletterOnly = 3

// RowCounts returns the rows one Seed into empty tables wrote per table,
// for the customers it returned: the product catalogue, the customers'
// rows, and NewsletterOnly more newsletter rows.
func RowCounts(cs []Customer) map[string]int {
	n := map[string]int{"products": len(catalogue), "customers": len(cs), "newsletter": NewsletterOnly}
	for _, c := range cs {
		n["addresses"] += len(c.Addresses)
		n["orders"] += len(c.Orders)
		n["invoices"] += len(c.Orders)
		for _, o := range c.Orders {
			n["order_items"] += len(o.Items)
		}
		n["support_tickets"] += len(c.Tickets)
		n["activity_log"] += c.Activity
		if c.Newsletter {
			n["newsletter"]++
		}
	}
	return n
}

// epoch is the "now" of the seeded shop: every time is before it, so the
// data does not depend on when it is seeded. Invoices are therefore all
// within their 10-year retention until mid-2032.
var epoch = time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)

// product is an entry of the catalogue, which holds no personal data.
type product struct {
	name  string
	cents int64
}

var catalogue = []product{
	{"Linen tea towel", 1290}, {"Ceramic mug", 1850}, {"Beeswax candle", 2400},
	{"Notebook, A5 dotted", 1450}, {"Enamel pin set", 990}, {"Wool scarf", 5900},
	{"Cast-iron teapot", 7400}, {"Canvas tote bag", 1600}, {"Olive-wood spoon", 1100},
	{"Herbal tea sampler", 2250}, {"Pothos in a pot", 1900}, {"Brass bookmark", 850},
}

// name is a name as written and as an email address spells it.
type name struct{ display, ascii string }

var firstNames = []name{
	{"Ada", "ada"}, {"Grace", "grace"}, {"Alan", "alan"}, {"Katherine", "katherine"},
	{"Linus", "linus"}, {"Margaret", "margaret"}, {"Edsger", "edsger"}, {"Barbara", "barbara"},
	{"Dennis", "dennis"}, {"Frances", "frances"}, {"Radia", "radia"}, {"Hedy", "hedy"},
	{"Donald", "donald"}, {"Sophie", "sophie"}, {"Zoë", "zoe"}, {"Søren", "soren"},
	{"José", "jose"}, {"Łukasz", "lukasz"}, {"Chloé", "chloe"}, {"Mehmet", "mehmet"},
	{"Aisha", "aisha"}, {"Yuki", "yuki"}, {"Ngozi", "ngozi"}, {"Siobhán", "siobhan"},
	{"Björn", "bjorn"}, {"Amélie", "amelie"}, {"Priya", "priya"}, {"Mateo", "mateo"},
}

var lastNames = []name{
	{"Lovelace", "lovelace"}, {"Hopper", "hopper"}, {"Turing", "turing"}, {"Johnson", "johnson"},
	{"Torvalds", "torvalds"}, {"Hamilton", "hamilton"}, {"Dijkstra", "dijkstra"}, {"Liskov", "liskov"},
	{"Ritchie", "ritchie"}, {"Allen", "allen"}, {"Perlman", "perlman"}, {"Lamarr", "lamarr"},
	{"Knuth", "knuth"}, {"Wilson", "wilson"}, {"Müller", "mueller"}, {"Kierkegaard", "kierkegaard"},
	{"García", "garcia"}, {"Nowak", "nowak"}, {"Dubois", "dubois"}, {"Yılmaz", "yilmaz"},
	{"Okafor", "okafor"}, {"Tanaka", "tanaka"}, {"O'Brien", "obrien"}, {"Andersson", "andersson"},
	{"Rossi", "rossi"}, {"Patel", "patel"}, {"Fernández", "fernandez"}, {"de Vries", "devries"},
}

// place is a city, its country, a postcode pattern (%02d) and a street
// format: the customer's unique unit (%s, "42A") and house number (%d)
// laid out as the country writes them.
type place struct {
	city, country, postcode string
	street                  func(unit string, house int) string
}

var places = []place{
	{"London", "GB", "N%d 4QX", func(u string, h int) string { return fmt.Sprintf("Flat %s, %d Mill Lane", u, h) }},
	{"Manchester", "GB", "M%d 3AB", func(u string, h int) string { return fmt.Sprintf("Flat %s, %d Station Road", u, h) }},
	{"Berlin", "DE", "101%02d", func(u string, h int) string { return fmt.Sprintf("Rosenweg %d, Whg. %s", h, u) }},
	{"Hamburg", "DE", "201%02d", func(u string, h int) string { return fmt.Sprintf("Elbchaussee %d, Whg. %s", h, u) }},
	{"Paris", "FR", "750%02d", func(u string, h int) string { return fmt.Sprintf("%d rue des Lilas, appt %s", h, u) }},
	{"Lyon", "FR", "690%02d", func(u string, h int) string { return fmt.Sprintf("%d quai Saint-Vincent, appt %s", h, u) }},
	{"Amsterdam", "NL", "10%02d AB", func(u string, h int) string { return fmt.Sprintf("Keizersgracht %d, unit %s", h, u) }},
	{"Dublin", "IE", "D%02d F2X3", func(u string, h int) string { return fmt.Sprintf("Apt %s, %d Harcourt Street", u, h) }},
	{"Madrid", "ES", "280%02d", func(u string, h int) string { return fmt.Sprintf("Calle Mayor %d, piso %s", h, u) }},
	{"Milano", "IT", "201%02d", func(u string, h int) string { return fmt.Sprintf("Via Roma %d, interno %s", h, u) }},
	{"Kraków", "PL", "30-0%02d", func(u string, h int) string { return fmt.Sprintf("ul. Długa %d, lok. %s", h, u) }},
	{"København", "DK", "1%02d0", func(u string, h int) string { return fmt.Sprintf("Nørregade %d, lejl. %s", h, u) }},
}

var platforms = []string{
	"Windows NT 10.0; Win64; x64",
	"Macintosh; Intel Mac OS X 10_15_7",
	"X11; Linux x86_64",
	"iPhone; CPU iPhone OS 17_5 like Mac OS X",
	"Linux; Android 14; Pixel 8",
}

var (
	statuses      = []string{"delivered", "delivered", "delivered", "shipped", "paid", "cancelled"}
	events        = []string{"login", "view_product", "view_product", "add_to_cart", "checkout", "logout", "password_change"}
	sources       = []string{"checkout", "footer", "popup"}
	ticketSubject = []string{"Where is my order?", "Change of delivery address", "Refund request", "Cannot log in", "Damaged item"}
	ticketProblem = []string{
		"My order #%d has not arrived yet.",
		"Please send order #%d to my other address.",
		"I would like a refund for order #%d, the colour is not what I expected.",
		"I cannot log in since I placed order #%d; the reset email never comes.",
		"The item in order #%d arrived broken.",
	}
)

// ip returns the IP address of a customer's j-th device: 10.x.y.z with
// three-digit octets, so that no address is a substring of another.
func ip(id int64, j int) string {
	k := id*2 + int64(j)
	return fmt.Sprintf("10.%d.%d.%d", 100+(k/22500)%150, 100+(k/150)%150, 100+k%150)
}

// userAgent returns the user agent of a customer's j-th device; the
// build number holds the customer's ID.
func userAgent(id int64, j int) string {
	return fmt.Sprintf("Mozilla/5.0 (%s) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.%d.%d Safari/537.36",
		platforms[(id+int64(j))%int64(len(platforms))], id, j)
}

// letheID derives a customer's subject ID from the seed and the ID: 16
// bytes in lower-case base32 without padding, as Lethe's vault makes them.
func letheID(seed, id int64) string {
	var in [16]byte
	binary.BigEndian.PutUint64(in[:8], uint64(seed))
	binary.BigEndian.PutUint64(in[8:], uint64(id))
	sum := sha256.Sum256(append([]byte("lethe-shop-subject\x00"), in[:]...))
	return "sub_" + base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding).EncodeToString(sum[:16])
}

// nextIDs are the first free id of each table.
type nextIDs map[string]int64

func (n nextIDs) take(table string) int64 {
	id := n[table]
	n[table]++
	return id
}

// Seed adds n customers, their addresses, orders, items, invoices, tickets,
// activity and newsletter subscriptions (every other customer's, and
// NewsletterOnly of people without an account), and the product catalogue
// if the products table is empty, in one transaction. The same seed gives
// the same customers on every engine; the IDs continue from the tables'
// largest, and the values are made from them, so seeding again adds
// different people. It returns the customers in ID order.
func Seed(ctx context.Context, db *sql.DB, dialect string, n int, seed int64) ([]Customer, error) {
	if err := checkDialect(dialect); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("seed: %d customers, want at least 1", n)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("seed: begin: %w", err)
	}
	defer tx.Rollback()

	next := nextIDs{}
	for _, t := range Tables() {
		var max int64
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM "+t).Scan(&max); err != nil {
			return nil, fmt.Errorf("seed: read largest id of %s: %w", t, err)
		}
		next[t] = max + 1
	}
	if next["products"] == 1 {
		var rows [][]any
		for _, p := range catalogue {
			rows = append(rows, []any{next.take("products"), p.name, p.cents})
		}
		if err := insert(ctx, tx, dialect, "products", []string{"id", "name", "price_cents"}, rows); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
	}

	rng := rand.New(rand.NewPCG(uint64(seed), 0x1e7e5b09))
	cs := make([]Customer, n)
	for i := range cs {
		cs[i] = newCustomer(rng, next, seed, i%2 == 0)
	}
	if err := insertCustomers(ctx, tx, dialect, cs, rng, next); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if dialect == Postgres {
		// Rows with explicit ids leave an identity's sequence behind;
		// move it on so that the application's own inserts work.
		for _, t := range Tables() {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(
				"SELECT setval(pg_get_serial_sequence('%s', 'id'), MAX(id)) FROM %s", t, t)); err != nil {
				return nil, fmt.Errorf("seed: advance the id sequence of %s: %w", t, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("seed: commit: %w", err)
	}
	return cs, nil
}

// newCustomer makes one customer with the next IDs.
func newCustomer(rng *rand.Rand, next nextIDs, seed int64, newsletter bool) Customer {
	id := next.take("customers")
	first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
	c := Customer{
		ID:         id,
		LetheID:    letheID(seed, id),
		Email:      fmt.Sprintf("%s.%s.%d@example.test", first.ascii, last.ascii, id),
		FullName:   fmt.Sprintf("%s %s-%04d", first.display, last.display, id),
		FirstName:  first.display,
		Phone:      fmt.Sprintf("+44 7700 9%05d", id),
		BirthDate:  time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(id*7919%18250)), // distinct for 18,250 IDs
		CreatedAt:  epoch.Add(-time.Duration(60+rng.IntN(1000))*24*time.Hour - time.Duration(rng.IntN(86400))*time.Second),
		Newsletter: newsletter,
		Cart:       map[string]int{},
	}
	for j := range 1 + rng.IntN(2) {
		pl := places[rng.IntN(len(places))]
		c.Addresses = append(c.Addresses, Address{
			ID:       next.take("addresses"),
			Street:   pl.street(fmt.Sprintf("%d%c", id, 'A'+j), 1+rng.IntN(120)),
			City:     pl.city,
			Postcode: fmt.Sprintf(pl.postcode, 10+rng.IntN(90)),
			Country:  pl.country,
		})
	}
	for j := range 1 + rng.IntN(2) {
		c.IPs = append(c.IPs, ip(id, j))
		c.UserAgents = append(c.UserAgents, userAgent(id, j))
	}
	since := epoch.Sub(c.CreatedAt)
	at := func() time.Time { // a time between the account's creation and epoch
		return c.CreatedAt.Add(time.Duration(rng.Int64N(int64(since)))).Truncate(time.Second)
	}
	for range 1 + rng.IntN(3) {
		o := Order{ID: next.take("orders"), PlacedAt: at(), Status: statuses[rng.IntN(len(statuses))],
			ShippingName: c.FullName, ShippingAddress: c.Addresses[0].String()}
		for range 1 + rng.IntN(3) {
			p := catalogue[rng.IntN(len(catalogue))]
			it := Item{ID: next.take("order_items"), Product: p.name, Quantity: 1 + rng.IntN(3), PriceCents: p.cents}
			if rng.IntN(4) == 0 {
				to := firstNames[rng.IntN(len(firstNames))].display + " " + lastNames[rng.IntN(len(lastNames))].display
				it.GiftMessage = fmt.Sprintf("Happy birthday, %s! With love from %s. [gift %d]", to, c.FirstName, it.ID)
			}
			o.TotalCents += int64(it.Quantity) * it.PriceCents
			o.Items = append(o.Items, it)
		}
		inv := next.take("invoices")
		o.Invoice = Invoice{ID: inv, Number: fmt.Sprintf("INV-%06d", inv), IssuedAt: o.PlacedAt.Add(time.Hour),
			BillingName: c.FullName, BillingAddress: c.Addresses[0].String(), TotalCents: o.TotalCents}
		c.Orders = append(c.Orders, o)
	}
	for range rng.IntN(3) {
		k := rng.IntN(len(ticketSubject))
		o := c.Orders[rng.IntN(len(c.Orders))]
		c.Tickets = append(c.Tickets, Ticket{
			ID:      next.take("support_tickets"),
			Subject: ticketSubject[k],
			Body: fmt.Sprintf("Hello, this is %s (%s). %s You can reach me on %s. Thanks! 🙂\n%s",
				c.FullName, c.Email, fmt.Sprintf(ticketProblem[k], o.ID), c.Phone, c.FirstName),
			CreatedAt: o.PlacedAt.Add(time.Duration(1+rng.IntN(72)) * time.Hour),
		})
	}
	c.Activity = 3 + rng.IntN(8)
	for range 1 + rng.IntN(3) {
		c.Cart[catalogue[rng.IntN(len(catalogue))].name] = 1 + rng.IntN(4)
	}
	for range 2 + rng.IntN(5) {
		c.Views = append(c.Views, catalogue[rng.IntN(len(catalogue))].name)
	}
	if rng.IntN(5) != 0 {
		c.Avatar = fmt.Sprintf("<avatar of customer %d: %016x>", id, rng.Uint64())
	}
	return c
}

// insertCustomers writes the customers' rows, parents first. Activity
// times and events are drawn here, from rng after every customer is made.
func insertCustomers(ctx context.Context, tx *sql.Tx, dialect string, cs []Customer, rng *rand.Rand, next nextIDs) error {
	var customers, addresses, orders, items, invoices, newsletter, tickets, activity [][]any
	for _, c := range cs {
		customers = append(customers, []any{c.ID, c.LetheID, c.Email, c.FullName, c.Phone, date(c.BirthDate), c.CreatedAt})
		for _, a := range c.Addresses {
			addresses = append(addresses, []any{a.ID, c.ID, a.Street, a.City, a.Postcode, a.Country})
		}
		for _, o := range c.Orders {
			orders = append(orders, []any{o.ID, c.ID, o.PlacedAt, o.Status, o.TotalCents, o.ShippingName, o.ShippingAddress})
			for _, it := range o.Items {
				var gift any // NULL
				if it.GiftMessage != "" {
					gift = it.GiftMessage
				}
				items = append(items, []any{it.ID, o.ID, it.Product, it.Quantity, it.PriceCents, gift})
			}
			v := o.Invoice
			invoices = append(invoices, []any{v.ID, c.ID, o.ID, v.Number, v.IssuedAt, v.BillingName, v.BillingAddress, v.TotalCents})
		}
		if c.Newsletter {
			newsletter = append(newsletter, []any{next.take("newsletter"), c.Email,
				c.CreatedAt.Add(time.Duration(rng.IntN(3600)) * time.Second), sources[rng.IntN(len(sources))]})
		}
		for _, t := range c.Tickets {
			tickets = append(tickets, []any{t.ID, c.ID, t.Subject, t.Body, t.CreatedAt})
		}
		since := epoch.Sub(c.CreatedAt)
		for k := range c.Activity {
			j := k % len(c.IPs) // every device at least once
			if k >= len(c.IPs) {
				j = rng.IntN(len(c.IPs))
			}
			at := c.CreatedAt.Add(time.Duration(rng.Int64N(int64(since)))).Truncate(time.Second)
			activity = append(activity, []any{next.take("activity_log"), c.ID, at, events[rng.IntN(len(events))], c.IPs[j], c.UserAgents[j]})
		}
	}
	for range NewsletterOnly {
		id := next.take("newsletter")
		newsletter = append(newsletter, []any{id, fmt.Sprintf("reader.%d@example.test", id),
			epoch.Add(-time.Duration(rng.IntN(500*86400)) * time.Second), sources[rng.IntN(len(sources))]})
	}
	for _, t := range []struct {
		name string
		cols []string
		rows [][]any
	}{
		{"customers", []string{"id", "lethe_id", "email", "full_name", "phone", "birth_date", "created_at"}, customers},
		{"addresses", []string{"id", "customer_id", "street", "city", "postcode", "country"}, addresses},
		{"orders", []string{"id", "customer_id", "placed_at", "status", "total_cents", "shipping_name", "shipping_address"}, orders},
		{"order_items", []string{"id", "order_id", "product", "quantity", "price_cents", "gift_message"}, items},
		{"invoices", []string{"id", "customer_id", "order_id", "number", "issued_at", "billing_name", "billing_address", "total_cents"}, invoices},
		{"newsletter", []string{"id", "email", "subscribed_at", "source"}, newsletter},
		{"support_tickets", []string{"id", "customer_id", "subject", "body", "created_at"}, tickets},
		{"activity_log", []string{"id", "customer_id", "at", "event", "ip_address", "user_agent"}, activity},
	} {
		if err := insert(ctx, tx, dialect, t.name, t.cols, t.rows); err != nil {
			return err
		}
	}
	return nil
}

// SeedActivity adds rows activity_log rows for the customer, one a minute
// before the seeded shop's epoch going back, from the customer's first
// device (the IP address and user agent Seed gave it), in one transaction
// of multi-row INSERTs: 100,000 rows take seconds. The ids are the
// table's own (identity, AUTO_INCREMENT, AUTOINCREMENT).
func SeedActivity(ctx context.Context, db *sql.DB, dialect string, customerID int64, rows int) error {
	if err := checkDialect(dialect); err != nil {
		return err
	}
	if rows < 0 {
		return fmt.Errorf("seed activity: %d rows", rows)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed activity: begin: %w", err)
	}
	defer tx.Rollback()
	addr, ua := ip(customerID, 0), userAgent(customerID, 0)
	const chunk = 10_000 // rows built at a time, to bound memory
	for start := 0; start < rows; start += chunk {
		batch := make([][]any, 0, min(chunk, rows-start))
		for i := start; i < min(start+chunk, rows); i++ {
			batch = append(batch, []any{customerID, epoch.Add(-time.Duration(i+1) * time.Minute), events[i%len(events)], addr, ua})
		}
		if err := insert(ctx, tx, dialect, "activity_log", []string{"customer_id", "at", "event", "ip_address", "user_agent"}, batch); err != nil {
			return fmt.Errorf("seed activity of customer %d: %w", customerID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seed activity: commit: %w", err)
	}
	return nil
}
