// Messages whose ENVELOPE and BODYSTRUCTURE are worth checking: plain and
// CRLF text, no Content-Type, nested multiparts with preambles, epilogues and
// boundaries that extend one another, attachments with every extension
// field, attached messages, digests, encoded-words, groups, comments, routes
// and broken addresses, bodies that end without a line break or a closing
// delimiter.
namespace Mail.Tests.Imap;

internal static class StructureCorpus
{
    public static readonly (string Name, string Text)[] Messages =
    [
        ("plain", """
            From: Alice Example <alice@example.org>
            To: bob@example.org
            Subject: plain text
            Date: Mon, 1 Jan 2024 10:00:00 +0000
            Message-ID: <plain@example.org>
            MIME-Version: 1.0
            Content-Type: text/plain; charset=utf-8; format=flowed
            Content-Transfer-Encoding: 8bit

            Hello Bob,
            two lines.

            """),
        ("crlf", "From: a@example.org\r\nTo: b@example.org\r\nSubject: crlf\r\n\r\nline one\r\nline two\r\n"),
        ("no content type", """
            From: "Doe, John" <john.doe@example.org>
            To: Mary <mary@example.org>, "Smith, Jo" <jo@example.org>
            Cc: team: ann@example.org, Ben <ben@example.org>;, carl@example.org
            Bcc: undisclosed-recipients:;
            Subject: =?UTF-8?B?SMOpbGxv?= and =?ISO-8859-1?Q?caf=E9?=
            Reply-To:
            Sender: Secretary <sec@example.org>
            In-Reply-To: <earlier@example.org>
            Date: Tue, 2 Jan 2024 11:00:00 +0100

            no header says what this is
            """),
        ("addresses", """
            From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.org>
            To: plain@example.org (Comment Name), <angle@example.org>, <@route.example,@two.example:routed@example.org>
            Cc: nodomain, "quoted local"@example.org, "Trailing"   <trail@example.org> (after)
            Subject: addresses
            Message-ID: <addresses@example.org>

            body
            """),
        ("alternative", """
            From: a@example.org
            Subject: alternative
            MIME-Version: 1.0
            Content-Type: multipart/alternative; boundary="alt-1"

            This is the preamble.

            --alt-1
            Content-Type: text/plain; charset=us-ascii

            plain version
            --alt-1
            Content-Type: text/html; charset=utf-8
            Content-Transfer-Encoding: quoted-printable

            <p>html version</p>

            --alt-1--
            This is the epilogue.
            """),
        ("mixed", """
            From: a@example.org
            Subject: mixed with attachment
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary=outer
            Content-Language: en, de

            --outer
            Content-Type: multipart/alternative; boundary=outer-inner

            --outer-inner
            Content-Type: text/plain

            text
            --outer-inner
            Content-Type: text/html

            <b>html</b>
            --outer-inner--
            --outer
            Content-Type: application/pdf; name="report.pdf"
            Content-Transfer-Encoding: base64
            Content-Disposition: attachment; filename="report.pdf"; size=12
            Content-ID: <part1@example.org>
            Content-Description: The report
            Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
            Content-Language: en
            Content-Location: http://example.org/report.pdf

            JVBERi0xLjQK
            JVBERi0xLjQK
            --outer   
            Content-Type: image/png; name*=utf-8''%E2%82%AC.png
            Content-Disposition: inline

            iVBORw0KGgo=
            --outer--
            """),
        ("attached message", """
            From: a@example.org
            Subject: forwarded
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="b1"

            --b1
            Content-Type: text/plain

            see below
            --b1
            Content-Type: message/rfc822

            From: Inner Sender <inner@example.org>
            To: someone@example.org
            Subject: the original
            Date: Wed, 3 Jan 2024 09:00:00 +0000
            MIME-Version: 1.0
            Content-Type: multipart/alternative; boundary="b2"

            --b2
            Content-Type: text/plain

            original text
            --b2
            Content-Type: text/html

            <i>original</i>
            --b2--

            --b1--

            """),
        ("digest", """
            From: list@example.org
            Subject: digest
            MIME-Version: 1.0
            Content-Type: multipart/digest; boundary=dig

            --dig

            From: one@example.org
            Subject: first

            first body
            --dig

            From: two@example.org
            Subject: second

            second body
            --dig--
            """),
        ("headers only", "From: a@example.org\nSubject: no body"),
        ("empty body", "From: a@example.org\nSubject: empty\n\n"),
        ("no final newline", "From: a@example.org\nSubject: unterminated\n\nlast line without newline"),
        ("unclosed multipart", """
            From: a@example.org
            Subject: unclosed
            Content-Type: multipart/mixed; boundary=open

            --open
            Content-Type: text/plain

            first
            --open

            part with an empty header
            """),
        ("utf8 header", "From: Zoë <zoe@example.org>\nSubject: Grüße aus Köln\nContent-Type: text/plain; charset=UTF-8\n\nhallo\n"),
        ("parameters", """
            From: a@example.org
            Subject: parameters
            Content-Type: MULTIPART/Mixed; BOUNDARY="Case"

            --Case
            Content-Type: Text/Plain; CHARSET=ISO-8859-1 (latin)
            Content-Transfer-Encoding: QUOTED-PRINTABLE

            caf=E9
            --Case
            Content-Type: application/octet-stream;
             name*0="long file ";
             name*1="name.txt"
            Content-Disposition: attachment;
             filename*0*=utf-8''%E2%82%AC;
             filename*1="%20rate.txt"

            data
            --Case
            Content-Type: text/plain; name==?utf-8?B?w6k=?=

            broken but common
            --Case--
            """),
        ("folded", "From: a@example.org\nSubject: a subject\n  folded over\n\tthree lines\nTo: first@example.org,\n second@example.org\n\nbody\n"),
    ];
}
