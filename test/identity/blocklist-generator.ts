/**
 * Generates src/identity/passwords/common-passwords.ts, the shipped blocklist (SP 800-63B-4
 * §3.1.1.2: refuse passwords from breach corpora and dictionary words). Run it with
 * `node test/identity/blocklist-generator.ts > src/identity/passwords/common-passwords.ts`;
 * test/identity/passwords.test.ts checks that the shipped file is exactly this program's output.
 *
 * The inputs are facts, not a copied file: the passwords every public breach analysis (NCSC's
 * "Pwned Passwords top 100k" release, SplashData/NordPass yearly lists, SecLists' frequency lists)
 * reports at the very top, written down here. Two expansions then cover what people type when a site
 * asks for 15 characters: a common word doubled, and two common words joined. Variants with digits,
 * symbols and leetspeak are not listed: the checker strips affixes and undoes leetspeak before looking
 * a password up (policy.ts).
 */

/** Frequently reported passwords and password stems (lower case, as the checker compares). */
export const BASE = `
123456 password 123456789 12345678 12345 qwerty 1234567 111111 1234567890 123123 abc123 1234 password1
iloveyou 1q2w3e4r 000000 qwerty123 zaq12wsx dragon sunshine princess letmein 654321 monkey 27653 1qaz2wsx
123321 qwertyuiop superman asdfghjkl trustno1 football baseball welcome shadow master michael jennifer
hunter ashley charlie jordan daniel thomas robert soccer hockey killer george andrew harley ranger buster
pepper ginger summer jessica 696969 mustang batman access starwars freedom whatever computer internet
samsung liverpool chelsea arsenal pokemon naruto hello secret admin administrator root toor changeme
passw0rd login guest test default qazwsx asdf zxcvbnm 1q2w3e q1w2e3r4 7777777 888888 121212 112233
159753 147258369 987654321 flower cookie cheese banana orange purple yellow silver maggie love lovely
angel angels babygirl baby family friends forever blessed jesus christ god heaven matrix mickey minnie
snoopy tigger tiger lion bear eagle falcon wolf dolphin butterfly rainbow unicorn diamond golden money
dollar rich boss king queen prince star stars moon sun sky ocean beach summer winter spring autumn
monday sunday hello123 welcome1 letmein1 abcdef abcdefg abcdefgh abcd1234 aa123456 a123456 qwe123
asd123 zxc123 qweasd qweasdzxc 1qazxsw2 zaq1xsw2 passpass pass1234 password12 secret123 admin123
root123 test1234 guest123 user user123 username login123 p4ssword pa55word qwertz azerty 123qwe
iloveu ilovegod loveme lover sexy hottie princess1 football1 baseball1 soccer1 hockey1 michelle
nicole daniel1 matthew joshua anthony william david richard joseph christopher james john jessica1
amanda melissa stephanie elizabeth sarah emily samantha hannah olivia sophia chocolate vanilla
strawberry pizza coffee beer whiskey vodka tequila spiderman ironman hulk thor captain america batman1
superman1 starwars1 pokemon1 minecraft fortnite roblox gaming gamer playstation xbox nintendo zelda
mario sonic yankees cowboys steelers lakers dallas boston chicago london paris berlin madrid moscow
newyork california texas florida canada mexico brazil india china japan korea germany france italy
spain england scotland ireland australia america usa qwerty12 qwerty1 q1w2e3 1a2b3c a1b2c3 a1b2c3d4
mypassword yourpassword nopassword newpassword oldpassword mypass letmeinnow opensesame iloveyou1
iloveyou2 trustme believe whatever1 nothing something anything everything fuckyou fuckoff asshole
bitch shit damn hell heaven1 angel1 devil demon ghost zombie vampire ninja pirate samurai warrior
dragon1 monkey1 shadow1 master1 hunter2 killer1 sunshine1 princess12 charlie1 jordan23 michael1
welcome123 changeme1 default1 system server network security firewall office company business
manager support service helpdesk student teacher school college university
`;

/** Keyboard walks and other long patterns people use to reach a length requirement. */
export const LONG = `
qwertyuiopasdfghjkl qwertyuiopasdfghjklzxcvbnm 1234567890qwertyuiop qwertyuiop1234567890
1q2w3e4r5t6y7u8i9o0p 1qaz2wsx3edc4rfv 1qaz2wsx3edc4rfv5tgb zaq12wsx3edc4rfv qazwsxedcrfvtgb
abcdefghijklmnop abcdefghijklmnopqrstuvwxyz thequickbrownfox thequickbrownfoxjumpsoverthelazydog
correcthorsebatterystaple iloveyouforever iloveyousomuch iloveyoubaby ilovemyfamily ilovemymom
letmeinplease pleaseletmein passwordpassword passwordpassword1 password123456789 mypasswordispassword
thisismypassword thisisapassword thisisasecret whatisthepassword ihatepasswords administrator1
administrator123 changemeplease changethispassword welcometothejungle welcomehome0 trustnoone
`;

function words(text: string): string[] {
  return text.split(/\s+/).filter(Boolean);
}

export function generate(): string[] {
  const base = [...new Set(words(BASE))];
  const out = new Set<string>([...base, ...words(LONG)]);
  const letters = base.filter((w) => /^[a-z]{4,}$/.test(w));
  for (const w of letters) out.add(w + w);
  // Two of the most common words joined ("monkeydragon", "letmeinpassword").
  const top = letters.slice(0, 60);
  for (const a of top) for (const b of top) if (a !== b) out.add(a + b);
  // Shorter than 8 characters can never pass the length rule, whatever the configuration.
  return [...out].filter((w) => w.length >= 8).sort();
}

export function render(): string {
  const list = generate();
  return `// Generated by test/identity/blocklist-generator.ts; do not edit (the test suite checks it matches).
/** Common passwords, lower case, one per line (${list.length} entries). */
export const COMMON_PASSWORDS = \`
${list.join('\n')}
\`;
`;
}

if (import.meta.main) process.stdout.write(render());
