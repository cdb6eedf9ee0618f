#!/usr/bin/python3
"""The demo portal in a real browser (headless Debian chromium + selenium).

  flow.py URL SHOTS_DIR PROFILE_DIR

Prints one line per step, "ok NAME" or "not ok NAME: why", and
"shot PATH" for each screenshot; exits 1 if a step failed.  t/browser.t
starts the stack (redis/demo/run.sh) and reads these lines.
"""

import os
import re
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ACTIVE, LAPSED, NETWORK_ONLY, EXPIRING = ("4410001", "4410002", "4410004",
                                         "4410003")
GOLD, CANCELLED = "4410005", "4410007"

url, shots, profile = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
failed = 0
n = 0


def step(name, cond, why=""):
    global failed
    if cond:
        print("ok %s" % name, flush=True)
    else:
        failed += 1
        print("not ok %s: %s" % (name, why), flush=True)
    return cond


def shot(driver, name):
    global n
    n += 1
    path = os.path.join(shots, "%02d-%s.png" % (n, name))
    driver.save_screenshot(path)
    print("shot %s" % path, flush=True)


def where(driver):
    u = urllib.parse.urlsplit(driver.current_url)
    return u.path, urllib.parse.parse_qs(u.query)


def wait_path(driver, path):
    try:
        WebDriverWait(driver, 10).until(lambda d: where(d)[0] == path)
        return True
    except Exception:
        return False


def text_of(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def rev_of(driver):
    found = driver.find_elements(By.CSS_SELECTOR, 'input[name="rev"]')
    return found[0].get_attribute("value") if found else None


def sign_in(driver, pid):
    driver.get(url + "/signin")
    driver.find_element(By.CSS_SELECTOR, 'input[value="%s"]' % pid).click()
    shot(driver, "signin-%s" % pid)
    driver.find_element(By.ID, "signin").click()
    return wait_path(driver, "/benefits/")


opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync",
          "--window-size=1100,800", "--user-data-dir=" + profile):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(20)

try:
    # 1 the lapsed partner signs in
    step("sign in as the lapsed partner %s" % LAPSED, sign_in(driver, LAPSED),
         driver.current_url)
    shot(driver, "benefits-lapsed")
    step("the header names the company", text_of(driver, "#company")
         == "Fabrikam Inc", text_of(driver, "header"))
    step("the header has Sign out when signed in",
         text_of(driver, "#signout") == "Sign out", text_of(driver, "header"))
    year = time.gmtime().tm_year
    ended = text_of(driver, "#state")
    step("the header gives the end as a readable date",
         re.match(r"^Action Pack ended on \d{1,2} [A-Z][a-z]+ \d{4}$", ended),
         ended)

    # 2 opens Azure credits, 3 lands on the renew page, the return URL intact
    driver.find_element(By.ID, "azure").click()
    ok = wait_path(driver, "/renew")
    path, q = where(driver)
    step("Azure credits sends the lapsed partner to /renew", ok, driver.current_url)
    step("the renew page keeps return=/benefits/azure/",
         q.get("return") == ["/benefits/azure/"], driver.current_url)
    step("the renew page says the Action Pack ended",
         len(driver.find_elements(By.ID, "lapsed")) == 1, driver.page_source[:300])
    shot(driver, "renew")

    # 4 clicks renew, 5 lands back on Azure credits and gets it
    rev0 = rev_of(driver)
    step("the renew form carries the rev of the record it shows",
         rev0 is not None and rev0.isdigit(), driver.page_source[:300])
    driver.find_element(By.ID, "renew").click()
    ok = wait_path(driver, "/benefits/azure/")
    step("renewing leads back to /benefits/azure/", ok, driver.current_url)
    granted = driver.find_elements(By.ID, "granted")
    step("Azure credits is granted at once after the renewal",
         len(granted) == 1 and "US$100" in granted[0].text,
         granted[0].text if granted else driver.page_source[:300])
    shot(driver, "azure-granted")
    renewed = text_of(driver, "#state")
    step("the header shows the new end, a year on",
         renewed == "Action Pack until " + renewed.split("until ")[-1]
         and renewed.endswith(str(year + 1)), renewed)

    # the back button: the renew page is no-store, yet a browser may show
    # it from memory (chromium's back-forward cache), form and rev as they
    # were; either way it must not renew a second time
    driver.back()
    ok = wait_path(driver, "/renew")
    rev1 = rev_of(driver)
    step("back: the renew page is either fetched again at the new rev or "
         "shown as it was", ok and rev0 is not None and rev1 is not None
         and int(rev1) in (int(rev0), int(rev0) + 1),
         "rev %s -> %s" % (rev0, rev1))
    print("back: the renew page came %s" % ("from the server"
          if rev1 != rev0 else "from the browser's memory"), flush=True)

    # a second click on the page as it was first shown (rev0) changes
    # nothing: CONFLICT, and the end stays one year on
    driver.execute_script(
        'document.querySelector(\'input[name="rev"]\').value = arguments[0]',
        rev0)
    driver.find_element(By.ID, "renew").click()
    ok = wait_path(driver, "/app/renew")
    step("a second renewal from the stale page is refused",
         ok and driver.find_elements(By.CSS_SELECTOR,
                                     '#failed[data-code="CONFLICT"]'),
         driver.page_source[:300])
    shot(driver, "renew-conflict")
    step("and the Action Pack still ends a year on, not two",
         text_of(driver, "#state") == renewed, text_of(driver, "#state"))

    # 6 the network-only partner opens developer tools and lands on offers
    step("sign in as the network-only partner %s" % NETWORK_ONLY,
         sign_in(driver, NETWORK_ONLY), driver.current_url)
    driver.find_element(By.ID, "tools").click()
    ok = wait_path(driver, "/offers")
    path, q = where(driver)
    step("developer tools sends the network-only partner to /offers", ok,
         driver.current_url)
    step("the offers page keeps return=/benefits/tools/",
         q.get("return") == ["/benefits/tools/"], driver.current_url)
    shot(driver, "offers")

    # and beyond the list: subscribing opens the tools page
    driver.find_element(By.ID, "subscribe").click()
    ok = wait_path(driver, "/benefits/tools/")
    step("subscribing to Action Pack leads to developer tools", ok and
         len(driver.find_elements(By.ID, "granted")) == 1, driver.current_url)
    step("whose text says the Action Pack gives them",
         "Your Action Pack includes developer tools"
         in text_of(driver, "#granted"), text_of(driver, "#granted"))
    shot(driver, "tools-granted")

    # developer tools through a gold competency, without Action Pack
    sign_in(driver, GOLD)
    driver.find_element(By.ID, "tools").click()
    ok = wait_path(driver, "/benefits/tools/")
    granted = text_of(driver, "#granted")
    step("developer tools for a partner without Action Pack names the "
         "competency that gives them", ok and "gold competency in "
         "cloud_platform" in granted and "Action Pack" not in granted,
         granted)
    shot(driver, "tools-gold")

    # a cancelled partner is told so
    sign_in(driver, CANCELLED)
    step("a cancelled partner is told so on the benefits page",
         "was cancelled" in text_of(driver, "#cancelled-notice"),
         text_of(driver, "main"))
    step("and in the header", text_of(driver, "#state")
         == "Action Pack cancelled", text_of(driver, "header"))
    driver.find_element(By.ID, "azure").click()
    ok = wait_path(driver, "/offers")
    step("Azure credits sends the cancelled partner to the offers, "
         "which say it was cancelled",
         ok and "was cancelled" in text_of(driver, "#cancelled"),
         driver.current_url)
    shot(driver, "offers-cancelled")

    # metered benefits: one licence key per click, "N of 10 used this
    # term", the eleventh click on the offers page; a reload takes nothing
    sign_in(driver, ACTIVE)
    driver.find_element(By.ID, "licenses").click()
    wait_path(driver, "/benefits/licenses/")
    keys = set()
    for i in range(1, 11):
        driver.find_element(By.ID, "getkey").click()
        ok = wait_path(driver, "/benefits/licenses/key")
        usage = text_of(driver, "#usage")
        if not step("click %d hands out a key: %d of 10 used this term"
                    % (i, i), ok and usage == "%d of 10 used this term" % i,
                    usage or driver.current_url):
            break
        keys.add(text_of(driver, "#key"))
        if i == 3:
            shot(driver, "license-key-3-of-10")
            driver.refresh()
            step("reloading the key page takes no other key",
                 text_of(driver, "#usage") == "3 of 10 used this term",
                 text_of(driver, "#usage"))
    step("ten different keys", len(keys) == 10, repr(sorted(keys)))
    driver.find_element(By.ID, "getkey").click()
    ok = wait_path(driver, "/offers")
    path, q = where(driver)
    step("the eleventh click lands on the offers page", ok,
         driver.current_url)
    step("which says the allowance is used up",
         "used up this benefit's allowance" in text_of(driver, "#quota"),
         text_of(driver, "main"))
    step("and keeps where the click came from",
         q.get("return", [""])[0].startswith("/benefits/licenses/key?click="),
         driver.current_url)
    shot(driver, "offers-quota")

    # Azure credits: this month's credit once a month
    driver.get(url + "/benefits/azure/")
    driver.find_element(By.ID, "activate").click()
    ok = wait_path(driver, "/benefits/azure/activate")
    step("this month's Azure credit is activated",
         ok and "US$100 of US$100 used this month"
         in text_of(driver, "#activated"), text_of(driver, "main"))
    shot(driver, "azure-activated")
    driver.get(url + "/benefits/azure/")
    driver.find_element(By.ID, "activate").click()
    ok = wait_path(driver, "/offers")
    step("a second activation this month lands on the offers page, "
         "allowance used up", ok and "used up" in text_of(driver, "#quota"),
         driver.current_url)

    # the reminder banner for a partner whose auto-renew is off
    sign_in(driver, EXPIRING)
    banner = driver.find_elements(By.ID, "reminder")
    step("the reminder banner shows the days left when auto-renew is off",
         len(banner) == 1 and "ends in 12 days" in banner[0].text,
         banner[0].text if banner else "no banner")
    step("with a readable date",
         len(banner) == 1 and "T00:00" not in banner[0].text
         and ", on " in banner[0].text,
         banner[0].text if banner else "no banner")
    shot(driver, "reminder")

    # signing out: the header offers Sign in again
    driver.find_element(By.ID, "signout").click()
    ok = wait_path(driver, "/signin")
    step("Sign out leads to the sign-in page, whose header says Sign in",
         ok and text_of(driver, "#signin-link") == "Sign in"
         and not driver.find_elements(By.ID, "signout"), driver.current_url)
except Exception as e:  # a missing element or a dead browser
    step("the browser flow ran to its end", False, repr(e).splitlines()[0])
    try:
        shot(driver, "failure")
    except Exception:
        pass
finally:
    driver.quit()

sys.exit(1 if failed else 0)
