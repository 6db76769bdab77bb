package mail_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/lethe-privacy/lethe/internal/mail"
)

func ExampleOutbox() {
	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	outbox, err := mail.NewOutbox(dir)
	if err != nil {
		log.Fatal(err)
	}
	outbox.From = "Example Privacy Team <privacy@example.com>"
	err = outbox.Send(context.Background(), mail.Message{
		To:      "ada@example.com",
		Subject: "Ihr Bestätigungscode",
		Text:    "Ihr Code lautet 482913.\n",
	})
	if err != nil {
		log.Fatal(err)
	}

	paths, err := outbox.List()
	if err != nil {
		log.Fatal(err)
	}
	m, err := mail.ReadMessage(paths[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(paths), m.Subject)
	fmt.Print(m.Text)
	// Output:
	// 1 Ihr Bestätigungscode
	// Ihr Code lautet 482913.
}

func ExampleValidate() {
	for _, addr := range []string{"ada@example.com", "Ada <ada@example.com>"} {
		fmt.Println(mail.Validate(addr))
	}
	// Output:
	// <nil>
	// lethe error: code=invalid message=email address must be a bare address, without a name, brackets, quotes, comments or spaces
}
